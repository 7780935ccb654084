"""`gradtune sweep`: every method in one report, a sweep that survives kill -9, two workers on one storage."""

import json
import os
import signal
import subprocess
import sys
import time

import optuna
import pytest
from conftest import TINY_CONFIG

from gradtune.cli.main import main
from gradtune.data.corpora import load_embedded
from gradtune.experiments.sweep import SweepError, read_sweep

SWEEP = """\
[sweep]
name = "{name}"
config = "{config}"
set = ["data.corpus={corpus}", "data.vocab_size=200", "data.min_guide=40", "train.steps={steps}",
       "train.eval_every={steps}", "train.log_every={steps}", "train.bleu_examples=2"]
methods = {methods}

[grid.space]
"guidance.lr_multiplier" = {grid}

[guided.space]
"guidance.lr_multiplier" = [1.0]

[lr-free]
optimizers = ["prodigy", "schedule_free_adamw", "dog"]

[optuna]
space."guidance.lr_multiplier" = {{low = 0.3, high = 3.0, log = true}}
trials = 1
startup_trials = 1
stop_at = "none"

[seeds]
seeds = [1]
guided_start = {{"guidance.lr_multiplier" = 1.0}}

[report]
test_sentences = 4
"""


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    path = tmp_path_factory.mktemp("corpus") / "small.tsv"
    pairs = load_embedded("lt-en").examples[:500]
    path.write_text("".join(f"{e.source}\t{e.target}\n" for e in pairs), encoding="utf-8")
    return path


def _sweep_file(folder, corpus, name="s", methods=("grid",), grid=(0.5, 2.0), steps=6):
    path = folder / f"{name}.toml"
    methods_toml = json.dumps(list(methods))
    path.write_text(SWEEP.format(name=name, config=TINY_CONFIG, corpus=corpus, methods=methods_toml,
                                 grid=json.dumps(list(grid)), steps=steps))  # fmt: skip
    return path


def _trials(out, name, method):
    storage = f"sqlite:///{out / 'sweep.db'}"
    return optuna.load_study(study_name=f"{name}/{method}", storage=storage).get_trials()


@pytest.mark.slow
def test_a_quick_sweep_reports_every_method_on_one_compute_axis(tmp_path, corpus, capsys):
    methods = ("grid", "guided", "lr-free", "seeds", "optuna")
    path, out = _sweep_file(tmp_path, corpus, "all", methods), tmp_path / "out"
    assert main(["sweep", str(path), "--out", str(out)]) == 0
    printed = capsys.readouterr()
    report = json.loads((out / "sweep.json").read_text())
    assert set(report["methods"]) == set(methods)
    counts = {m: report["methods"][m]["trials"] for m in methods}
    assert counts == {"grid": 2, "guided": 1, "lr-free": 3, "seeds": 2, "optuna": 1}
    for method, summary in report["methods"].items():
        best = summary["best"]
        assert best["dev_loss"] > 0 and 0 <= best["test_bleu"] <= 100 and 0 <= best["test_chrf"] <= 100, method
        assert summary["compute_flops"] > 0
    grid = report["trials"]["grid"]
    # one compute axis: the held grid trials take 6 plain steps of equal flops; guided steps cost more
    assert [t["compute"]["plain_steps"] for t in grid] == [6, 6] and grid[0]["compute"]["guided_steps"] == 0
    guided = report["trials"]["guided"][0]["compute"]  # the default: forward-mode guidance for 0.4 of the run
    assert (guided["guided_steps"], guided["plain_steps"]) == (2, 4)
    assert guided["guided_flops"] / 2 > grid[0]["compute"]["plain_flops"] / 6
    seeds = {t["label"] for t in report["trials"]["seeds"]}
    best_grid = min(grid, key=lambda t: t["dev_loss"])["label"]
    assert seeds == {f"grid {best_grid},seed=1", "guided lr_multiplier=1,seed=1"}
    for name in ("efficiency.png", "trajectories.png", "final_vs_start.png"):
        assert (out / name).stat().st_size > 1000
    for trial in (t for rows in report["trials"].values() for t in rows):  # every trial is an ordinary run
        run = tmp_path / "out" / "trials" / os.path.basename(trial["run_dir"])
        assert json.loads((run / "summary.json").read_text())["steps"] == 6
    assert "grid " in printed.out and "lr-free prodigy:" in printed.out
    assert printed.err.count("sweep all: [") == 9  # one progress line per trial
    # --report: the report of what is finished, no trial run again
    assert main(["sweep", str(path), "--out", str(out), "--report"]) == 0
    assert "sweep all: [" not in capsys.readouterr().err
    assert json.loads((out / "sweep.json").read_text())["methods"]["grid"]["trials"] == 2


@pytest.mark.slow
def test_a_killed_sweep_keeps_its_finished_trials_and_continues_the_unfinished_one(tmp_path, corpus):
    path, out = _sweep_file(tmp_path, corpus, "k", grid=(0.5, 1.0, 2.0), steps=40), tmp_path / "out"
    command = [sys.executable, "-m", "gradtune", "sweep", str(path), "--out", str(out),
               "--set", "train.checkpoint_every=10", "--set", "train.keep_checkpoints=10"]  # fmt: skip
    sweep = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    first = out / "trials" / "grid-lr_multiplier=0.5" / "summary.json"
    second = out / "trials" / "grid-lr_multiplier=1" / "metrics.jsonl"
    deadline = time.time() + 300
    while not (first.exists() and second.exists()) and time.time() < deadline:
        time.sleep(0.2)
    assert first.exists() and second.exists(), "the sweep did not reach its second trial"
    saved = out / "trials" / "grid-lr_multiplier=1" / "checkpoints" / "step_00000010.json"
    while not saved.exists() and time.time() < deadline:  # its first checkpoint
        time.sleep(0.05)
    os.kill(sweep.pid, signal.SIGKILL)  # mid-trial: the second one is training
    sweep.wait()
    finished_at, saved_at = first.stat().st_mtime, saved.stat().st_mtime
    assert subprocess.run(command, capture_output=True, timeout=600).returncode == 0
    assert saved.stat().st_mtime == saved_at  # the killed trial went on from its checkpoint, not from step 0
    assert json.loads((saved.parents[1] / "summary.json").read_text())["steps"] == 40
    states = [(t.user_attrs["label"], t.state.name) for t in _trials(out, "k", "grid")]
    assert sorted(states) == [
        ("lr_multiplier=0.5", "COMPLETE"),
        ("lr_multiplier=1", "COMPLETE"),  # continued ...
        ("lr_multiplier=1", "FAIL"),  # ... after the killed attempt was found stale
        ("lr_multiplier=2", "COMPLETE"),
    ]
    assert first.stat().st_mtime == finished_at  # the finished trial was not rerun
    assert json.loads((out / "sweep.json").read_text())["methods"]["grid"]["trials"] == 3


@pytest.mark.slow
def test_a_sweep_file_changed_between_runs_reports_only_its_own_trials(tmp_path, corpus, capsys):
    """A trial is what it runs: rerun into the same folder after the file changed, the points
    still in it are kept (not rerun), new ones run, and finished or queued trials of settings it
    no longer has are left out of the report — a changed ``set`` list reruns every point."""
    out = tmp_path / "out"
    path = _sweep_file(tmp_path, corpus, "c", grid=(0.5, 2.0))
    assert main(["sweep", str(path), "--out", str(out)]) == 0
    kept = out / "trials" / "grid-lr_multiplier=0.5" / "summary.json"
    finished_at = kept.stat().st_mtime
    _sweep_file(tmp_path, corpus, "c", grid=(0.5, 1.0))  # 2.0 gone, 1.0 new
    capsys.readouterr()
    assert main(["sweep", str(path), "--out", str(out)]) == 0
    err = capsys.readouterr().err
    assert "1 finished grid trial(s) ran settings this sweep file no longer has" in err
    assert err.count("sweep c: [") == 1  # only 1.0 ran
    assert kept.stat().st_mtime == finished_at
    report = json.loads((out / "sweep.json").read_text())
    assert sorted(t["label"] for t in report["trials"]["grid"]) == ["lr_multiplier=0.5", "lr_multiplier=1"]
    path.write_text(path.read_text().replace('"train.bleu_examples=2"', '"train.bleu_examples=3"'))
    assert main(["sweep", str(path), "--out", str(out)]) == 0
    assert capsys.readouterr().err.count("sweep c: [") == 2  # a new set list: both points again
    assert kept.stat().st_mtime > finished_at
    report = json.loads((out / "sweep.json").read_text())
    assert [t["base"][-1] for t in report["trials"]["grid"]] == ["train.bleu_examples=3"] * 2


@pytest.mark.slow
def test_two_workers_on_one_storage_run_each_trial_once(tmp_path, corpus):
    path, out = _sweep_file(tmp_path, corpus, "w", grid=(0.3, 0.6, 1.2, 2.4)), tmp_path / "out"
    result = subprocess.run(
        [sys.executable, "-m", "gradtune", "sweep", str(path), "--out", str(out), "--workers", "2"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    trials = _trials(out, "w", "grid")
    assert all(t.state.name == "COMPLETE" for t in trials)
    labels = [t.user_attrs["label"] for t in trials]
    assert sorted(labels) == sorted(f"lr_multiplier={v:g}" for v in (0.3, 0.6, 1.2, 2.4))  # each once
    assert len({t.user_attrs["worker"] for t in trials}) == 2  # both workers took trials


def test_a_malformed_sweep_file_or_an_unreachable_storage_is_one_line(tmp_path, corpus, capsys):
    bad = tmp_path / "bad.toml"
    cases = {
        "[sweep]\nmethods = ['grid', 'bayes']\n": "unknown method(s) bayes",
        "[sweep]\nmethods = ['grid']\n": "names grid but the file has no such section",
        "[grid.space]\n'guidance.lr_multiplier' = 'many'\n": "give a list of numbers",
        "[sweeps]\n": "unknown section(s) sweeps",
        "[sweep\n": "not valid TOML",
    }
    for text, message in cases.items():
        bad.write_text(text)
        with pytest.raises(SweepError, match=message.replace("(", r"\(").replace(")", r"\)")):
            read_sweep(bad)
    assert main(["sweep", str(tmp_path / "missing.toml")]) == 1
    assert "no such sweep file" in capsys.readouterr().err
    path = _sweep_file(tmp_path, corpus)
    url = "postgresql://nobody@127.0.0.1:9/none"
    assert main(["sweep", str(path), "--out", str(tmp_path / "o"), "--storage", url]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith(f"gradtune: error: cannot open the sweep storage {url}")


@pytest.mark.parametrize("path", sorted((TINY_CONFIG.parent / "sweeps").glob("*.toml")), ids=lambda p: p.stem)
def test_every_committed_sweep_and_its_quick_overlay_make_valid_trial_configs(path):
    """A sweep file whose trials would fail only at run time (a bad key, a bad value) fails here."""
    from gradtune.experiments.sweep import fixed_points
    from gradtune.train.config import load_config

    for overlay in (None, "quick"):
        sweep = read_sweep(path, overlay)
        for method in ("grid", "guided", "lr-free"):
            if method in sweep.methods:
                for point in fixed_points(sweep, method):
                    load_config(sweep.config, [*sweep.base_set, *point.overrides])


def test_the_plots_follow_the_key_the_trials_vary():
    """A setting every trial shares (``guidance.horizon=forward``) is not the swept key, though
    it comes first in each trial's overrides; with one trial, its point's (last) key."""
    from gradtune.experiments.sweep import _swept_key

    def trial(*overrides):
        return {"overrides": list(overrides)}

    shared = ("guidance.horizon=forward", "guidance.until_step=240")
    guided = [trial(*shared, f"guidance.lr_multiplier={m}") for m in (0.1, 1.0, 10.0)]
    assert _swept_key({"trials": {"guided": guided}}) == "guidance.lr_multiplier"
    grid = [trial("guidance.enabled=false", f"optim.label_smoothing={v}") for v in (0.0, 0.1)]
    assert _swept_key({"trials": {"grid": grid, "guided": guided}}) == "optim.label_smoothing"
    assert _swept_key({"trials": {"guided": guided[:1]}}) == "guidance.lr_multiplier"
    assert _swept_key({"trials": {"guided": [trial("guidance.lr_multiplier=1", "optim.b1=0.8")]}}) == "optim.b1"
