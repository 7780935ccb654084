"""``gradtune translate`` and ``gradtune evaluate`` on a tiny run, and their bad-input errors.

Two training steps leave the model near its random start: its translations are nonsense,
but long and different for each source, which is what checking order and batching needs.
"""

import io
import json
from pathlib import Path

import pytest
from conftest import TINY

from gradtune.cli.main import main
from gradtune.train import evaluate
from gradtune.train.logbook import read_metrics
from gradtune.train.setup import load_run

SOURCES = ["Atidaryti failą", "Įrašyti", "", "Langas", "Atidaryti failą ir įrašyti jį kaip naują dokumentą"]


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    run = tmp_path_factory.mktemp("translate") / "run"
    args = [
        "train",
        "--steps",
        "2",
        "--run-dir",
        str(run),
        *TINY,
        "--set",
        "beam_size=2",
        "--set",
        "best_metric=dev_bleu",
    ]
    assert main(args) == 0
    return run


def _error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    return err[0]


@pytest.mark.slow
def test_translate_writes_one_line_per_source_in_order(run, tmp_path, capsys, monkeypatch):
    capsys.readouterr()
    (tmp_path / "src.txt").write_text("".join(f"{s}\n" for s in SOURCES), encoding="utf-8")
    assert main(["translate", "--run", str(run), "--beam", "2", "--batch-size", "2", str(tmp_path / "src.txt")]) == 0
    from_file = capsys.readouterr().out.split("\n")
    assert from_file[-1] == "" and len(from_file) == len(SOURCES) + 1

    cfg, tokenizer, graphdef, state = load_run(run)
    one_by_one = [
        evaluate.translate(tokenizer, graphdef, state.params, [s], cfg.data.row_len, beam_size=2, batch_size=1)[0]
        for s in SOURCES
    ]
    assert from_file[:-1] == one_by_one
    assert len(set(one_by_one)) == len(SOURCES)  # every source gets its own translation

    monkeypatch.setattr("sys.stdin", io.StringIO("\n".join(SOURCES[:2]) + "\n"))
    assert main(["translate", "--run", str(run), "--beam", "2", "--checkpoint", "best"]) == 0
    assert capsys.readouterr().out.split("\n")[:-1] == one_by_one[:2]  # the best (by dev_bleu) is the last here


@pytest.mark.slow
def test_evaluate_scores_as_training_did_and_writes_json(run, tmp_path, capsys):
    """--src/--ref with the dev subset training scored, at its beam: the chrF it logged."""
    capsys.readouterr()
    cfg, *_ = load_run(run)
    from gradtune.train.inputs import load_splits

    dev = load_splits(cfg.data).splits["dev"][: cfg.train.bleu_examples]
    (tmp_path / "dev.lt").write_text("".join(f"{e.source}\n" for e in dev), encoding="utf-8")
    (tmp_path / "dev.en").write_text("".join(f"{e.target}\n" for e in dev), encoding="utf-8")
    args = ["evaluate", "--run", str(run), "--beam", "2", "--src", str(tmp_path / "dev.lt"), "--ref"]
    assert main([*args, str(tmp_path / "dev.en")]) == 0
    printed = capsys.readouterr().out
    assert "nrefs:1|case:mixed|eff:no|tok:13a|smooth:exp|version:" in printed  # the BLEU signature

    result = json.loads((run / "eval-dev-beam2.json").read_text())
    logged = [r for r in read_metrics(run) if "dev_chrf" in r][-1]
    assert result["sentences"] == 16 and result["step"] == 2 and result["checkpoint"] == "last"
    assert result["chrf"] == pytest.approx(logged["dev_chrf"]) and result["chrf"] > 0
    assert result["bleu"] == pytest.approx(logged["dev_bleu"])

    assert main(["evaluate", "--run", str(run), "--split", "test", "--beam", "1"]) == 0
    result = json.loads((run / "eval-test-beam1.json").read_text())
    assert result["data"] == "test" and result["sentences"] > 500 and result["chrf"] > 0
    assert not list(run.glob("*.tmp"))


@pytest.mark.slow
@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["translate", "--run", "{missing}"], "no such run directory"),
        (["translate", "--run", "{run}", "--checkpoint", "7"], "has no checkpoint '7'; choose last, best or one of"),
        (["translate", "--run", "{run}", "--checkpoint", "latest"], "has no checkpoint 'latest'"),
        (["translate", "--run", "{run}", "{missing}"], "missing: cannot read it (No such file or directory)"),
        (["translate", "--run", "{run}", "{run}"], "cannot read it (Is a directory)"),
        (["translate", "--run", "{run}", "--beam", "0"], "--beam and --batch-size must be at least 1"),
        (["evaluate", "--run", "{missing}"], "no such run directory"),
        (["evaluate", "--run", "{run}", "--src", "{run}/config.json"], "--src and --ref go together"),
        (["evaluate", "--run", "{run}", "--src", "{two}", "--ref", "{one}"], "two.txt has 2 lines but"),
        (["evaluate", "--run", "{run}", "--split", "dev", "--src", "{two}", "--ref", "{two}"], "not both"),
    ],
)
def test_bad_input_is_one_clear_line_and_exit_1(run, tmp_path, capsys, args, message):
    capsys.readouterr()
    (tmp_path / "two.txt").write_text("a\nb\n")
    (tmp_path / "one.txt").write_text("a\n")
    names = {"run": run, "missing": tmp_path / "missing", "two": tmp_path / "two.txt", "one": tmp_path / "one.txt"}
    assert main([a.format(**names) for a in args]) == 1
    line = _error_line(capsys)
    assert line.startswith("gradtune: error: ") and message in line


def test_training_refuses_an_unknown_best_metric_before_writing_anything(tmp_path, capsys):
    assert main(["train", "--run-dir", str(tmp_path / "run"), "--set", "best_metric=bleu"]) == 1
    assert (
        "train.best_metric is 'bleu'; it must be one of dev_loss, dev_accuracy, dev_bleu, dev_chrf"
        in capsys.readouterr().err
    )
    assert not (tmp_path / "run").exists()
