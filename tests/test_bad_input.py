"""Bad input, as a new user gives it: one line naming the input and the fix, exit 1, nothing left behind."""

import ast
import gzip
import lzma
import re
import subprocess
import sys
import tomllib

import pytest
from conftest import CONFIGS, TINY

from gradtune.cli.main import main
from gradtune.data.corpora import load_embedded, read_text_pair, read_tsv
from gradtune.errors import ConfigError, DataError
from gradtune.train import inputs
from gradtune.train.config import Config, load_config
from gradtune.train.resolve import resolve

# (setting — several space-separated —, what the one error line must name)
BAD_SETTINGS = [
    ("optimizer=foo", "optim.optimizer is 'foo'"),
    ("lr_multiplier=-1", "guidance.lr_multiplier is -1.0"),
    ("meta_optimizer=nope", "guidance.meta_optimizer is 'nope'"),
    ("meta_options=b7=1", "guidance.meta_options = 'b7=1': adam does not take them"),
    ("meta_turn_decay=0", "guidance.meta_turn_decay is 0.0"),
    ("forward_restart=clip", "guidance.forward_restart is 'clip'"),
    ("horizon=backward", "guidance.horizon is 'backward'"),
    ("clip=-1", "guidance.clip is -1.0; it must be ≥ 0 (0: none)"),
    ("guide_average=1", "guidance.guide_average is 1.0; it must be in [0, 1)"),
    ("horizon=one-step guide_average=0.9", "guidance.guide_average is 0.9; it must be 0 with horizon one-step"),
    ("forward_min_age=-1", "guidance.forward_min_age is -1; it must be ≥ 0"),
    ("horizon=one-step forward_min_age=20", "guidance.forward_min_age is 20; it must be 0 with horizon one-step"),
    ("forward_max_age=-1", "guidance.forward_max_age is -1; it must be ≥ 0"),
    ("horizon=one-step forward_max_age=40", "guidance.forward_max_age is 40; it must be 0 with horizon one-step"),
    (
        "horizon=forward forward_min_age=20 forward_max_age=20",
        "guidance.forward_max_age is 20; it must be 0 or > guidance.forward_min_age = 20",
    ),
    ("forward_bound_step=-1", "guidance.forward_bound_step is -1.0; it must be ≥ 0"),
    (
        "horizon=one-step forward_bound_step=0.1",
        "guidance.forward_bound_step is 0.1; it must be 0 unless horizon = forward",
    ),
    ("hold_mean_from=-1", "guidance.hold_mean_from is -1; it must be ≥ 0"),
    ("horizon=one-step hold_mean_from=100", "guidance.hold_mean_from is 100; it must be 0 with horizon one-step"),
    (
        "horizon=forward until_step=5 hold_mean_from=5",
        "guidance.hold_mean_from is 5; it must be 0 or below guidance.until_step = 5",
    ),
    ("meta_options=b1", "guidance.meta_options: cannot read 'b1'"),
    ("meta_options=b1=high", "guidance.meta_options: b1 = 'high' is not a number"),
    ("schedule=constant*bogus", "optim.schedule: unknown schedule factor 'bogus'"),
    ("batch_rows=0", "data.batch_rows is 0"),
    ("guided=momentum", "guidance.guided: optimizer adamw has no guidable value 'momentum'"),
    ("num_heads=3", "model.d_model is 32; it must be a multiple of model.num_heads (3)"),
    ("best_metric=bleu", "train.best_metric is 'bleu'"),
    ("beam_size=0", "train.beam_size is 0"),
    ("bucket_by=size", "data.bucket_by is 'size'"),
    ("dev_fraction=0.7", "data.dev_fraction is 0.7"),
    ("specs=b1:tanh", "guidance.specs names b1, which is not guided"),
    ("optim.b1=0.9", "optim.b1 is 0.9; it must be unset: optimizer sgd has no b1"),
    ("corpus=wmt99:lt-en", "data.corpus: unknown hub dataset 'wmt99'"),
]


@pytest.fixture
def no_data_reads(monkeypatch):
    """Fail the test if any corpus is read."""

    def refuse(*args, **kwargs):
        raise AssertionError("the data were read before the config error")

    monkeypatch.setattr(inputs, "prepare_splits", refuse)


@pytest.mark.parametrize(("setting", "named"), BAD_SETTINGS)
def test_a_bad_setting_is_one_line_before_any_data_are_read(setting, named, tmp_path, capsys, no_data_reads):
    run = tmp_path / "run"
    extra = ["--set", "optimizer=sgd"] if setting.startswith("optim.b1") else []
    sets = [arg for one in setting.split() for arg in ("--set", one)]  # several settings, space-separated
    assert main(["train", "--run-dir", str(run), *TINY, *extra, *sets]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("gradtune: error: ") and named in err[0], err
    assert not run.exists()


def test_the_command_line_error_has_no_traceback(tmp_path):
    run = tmp_path / "run"
    result = subprocess.run(
        [sys.executable, "-m", "gradtune", "train", "--run-dir", str(run), "--set", "optimizer=foo"],
        capture_output=True,
        text=True,
        timeout=120,  # a hang guard, not a speed claim
    )
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith("gradtune: error: optim.optimizer is 'foo'")
    assert not run.exists()


def _corpus(path, lines=600):
    pairs = load_embedded("lt-en").examples[:lines]
    path.write_text("".join(f"{e.source}\t{e.target}\n" for e in pairs), encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("settings", "named"),
    [
        (["vocab_size=20000"], "data.vocab_size 20000 is larger than the training data allows"),
        (["bucket_by=group"], "data.bucket_by = 'group' needs an integer third column"),
        (["min_tokens=200", "max_tokens=0"], "cleaning removed all 600 pairs"),
    ],
)
def test_an_error_that_needs_the_data_leaves_no_run_directory(settings, named, tmp_path, capsys):
    run, corpus = tmp_path / "run", _corpus(tmp_path / "c.tsv")
    args = ["train", "--steps", "1", "--run-dir", str(run), *TINY, "--set", f"corpus={corpus}", "--set", "min_guide=20"]
    assert main([*args, *(a for s in settings for a in ("--set", s))]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("gradtune: error: ") and named in err[-1], err
    assert not run.exists()


def test_resolve_is_pure_and_idempotent():
    cfg = Config()
    resolved = resolve(cfg)
    assert cfg.optim.b1 is None and cfg.guidance.guide_batch == "auto"  # the input is untouched
    assert cfg.guidance.horizon == "auto" and cfg.guidance.until_step is None
    assert resolved.optim.b1 == 0.9 and resolved.guidance.guide_batch == "fixed"
    assert resolved.guidance.horizon == "forward" and resolved.guidance.until_step == 240
    assert resolve(resolved) == resolved
    assert resolve(load_config(None, ["guided=all"])).guidance.guided == "learning_rate,b1,b2,eps,weight_decay"


def test_the_default_config_file_is_the_default_run():
    assert load_config(CONFIGS / "default.toml") == load_config(None)
    assert load_config("default") == load_config(None)  # a name in configs/


@pytest.mark.parametrize(
    ("name", "text", "named"),
    [
        ("a.toml", "[train]\nsteps = true\n", "config key train.steps: True is not a valid int"),
        ("b.toml", "[optim]\noptimizer = 5\n", "config key optim.optimizer: 5 is not a valid str"),
        ("c.json", '{"train": {"steps": "many"}}', "config key train.steps: 'many' is not a valid int"),
        ("d.json", "[1, 2]", "a config file holds one table"),
        ("e.toml", "[train\nsteps = 1\n", "not valid TOML"),
        ("f.json", '{"train": {"stepz": 3}}', "unknown config key 'train.stepz'"),
    ],
)
def test_config_files_of_either_format_with_wrong_values(name, text, named, tmp_path):
    (tmp_path / name).write_text(text)
    with pytest.raises(ConfigError, match=named.replace("[", r"\[")):
        load_config(tmp_path / name)


def test_overlays_lay_over_the_file_and_an_unknown_one_is_an_error():
    quick = load_config("noisy_corpus", overlay="quick")
    full = load_config("noisy_corpus")
    assert (full.train.steps, quick.train.steps) == (2500, 1000) and quick.data.corpus == full.data.corpus == "es-en"
    with pytest.raises(ConfigError, match="has no overlay 'fast'; it has: quick"):
        load_config("noisy_corpus", overlay="fast")


def test_a_byte_order_mark_is_not_part_of_the_first_sentence(tmp_path):
    (tmp_path / "bom.tsv").write_bytes("\ufeffLabas\tHello\nAčiū\tThanks\n".encode())
    assert read_tsv(tmp_path / "bom.tsv").examples[0].source == "Labas"
    (tmp_path / "s.txt").write_bytes("\ufeffLabas\n".encode())
    (tmp_path / "t.txt").write_bytes("\ufeffHello\n".encode())
    example = read_text_pair(tmp_path / "s.txt", tmp_path / "t.txt").examples[0]
    assert (example.source, example.target) == ("Labas", "Hello")


def test_damaged_or_truncated_compressed_corpora_are_one_line_naming_the_file(tmp_path):
    text = "".join(f"šaltinis {i}\ttarget {i}\n" for i in range(5000)).encode()
    whole_gz, whole_xz = gzip.compress(text), lzma.compress(text)
    cases = {
        "truncated.tsv.gz": whole_gz[: len(whole_gz) // 2],
        "corrupt.tsv.gz": whole_gz[:20] + bytes(200) + whole_gz[220:],
        "not-gzip.tsv.gz": b"plain text, not gzip\n",
        "truncated.tsv.xz": whole_xz[: len(whole_xz) // 2],
    }
    for name, data in cases.items():
        (tmp_path / name).write_bytes(data)
        with pytest.raises(
            DataError, match=rf"^{tmp_path / name}: unreadable as an? (gzip|xz) file .*damaged or truncated"
        ):
            read_tsv(tmp_path / name)
    (tmp_path / "dir.tsv").mkdir()
    with pytest.raises(DataError, match="a directory, not a corpus file"):
        read_tsv(tmp_path / "dir.tsv")


def test_a_folder_that_is_not_a_run_is_one_line(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    for command in (["translate", "--run", str(tmp_path / "empty")], ["evaluate", "--run", str(tmp_path / "empty")]):
        assert main(command) == 1
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and "is not a gradtune run (no config.json)" in err[0], err
    assert main(["train", "--resume", str(tmp_path / "empty")]) == 1
    assert "holds no run to resume" in capsys.readouterr().err


def test_translate_and_evaluate_input_files_are_checked_before_the_model_loads(tmp_path, capsys):
    not_a_run = tmp_path / "nothing"  # the file errors come first, so no run is needed to see them
    (tmp_path / "three.lt").write_text("a\nb\nc\n")
    (tmp_path / "two.en").write_text("a\nb\n")
    (tmp_path / "folder").mkdir()
    cases = [
        (["translate", "--run", str(not_a_run), str(tmp_path / "missing.lt")], "missing.lt: cannot read it"),
        (["translate", "--run", str(not_a_run), str(tmp_path / "folder")], "folder: cannot read it"),
        (
            [
                "evaluate",
                "--run",
                str(not_a_run),
                "--src",
                str(tmp_path / "three.lt"),
                "--ref",
                str(tmp_path / "two.en"),
            ],
            "three.lt has 3 lines but",
        ),
    ]
    for command, named in cases:
        assert main(command) == 1
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and named in err[0], err
    (tmp_path / "latin1.lt").write_bytes("ąčę".encode("cp1257"))
    assert main(["translate", "--run", str(not_a_run), str(tmp_path / "latin1.lt")]) == 1
    assert "not UTF-8 text" in capsys.readouterr().err


def test_no_writer_outside_the_atomic_write_helper_renames_files():
    src = CONFIGS.parent / "src" / "gradtune"
    renames = re.compile(r"os\.replace\(|os\.rename\(|\.rename\(|\btmp\.replace\(|\.replace\(path\)")
    offenders = [
        f"{p.relative_to(src)}:{n}"
        for p in src.rglob("*.py")
        if p.name != "files.py"
        for n, line in enumerate(p.read_text().splitlines(), 1)
        if renames.search(line)
    ]
    assert offenders == []


def test_every_third_party_module_the_code_imports_is_declared_in_pyproject():
    declared = tomllib.loads((CONFIGS.parent / "pyproject.toml").read_text())["project"]
    names = [*declared["dependencies"], *(d for extra in declared["optional-dependencies"].values() for d in extra)]
    packages = {re.split(r"[=<>\[ ]", n)[0].lower().replace("-", "_") for n in names}
    module_of = {"orbax_checkpoint": "orbax", "tensorboardx": "tensorboardX"}
    importable = {module_of.get(p, p) for p in packages}
    imported = set()
    for path in (CONFIGS.parent / "src" / "gradtune").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                imported |= {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                imported.add(node.module.split(".")[0])
    third_party = {m for m in imported if m not in sys.stdlib_module_names and m != "gradtune"}
    assert third_party - importable == set()
