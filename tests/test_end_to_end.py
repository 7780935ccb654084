"""A tiny run on the embedded lt-en corpus through the CLI: every artefact, loss going down."""

import json

import numpy as np
import pytest
from conftest import TINY

from gradtune.cli.main import main
from gradtune.train.logbook import read_metrics
from gradtune.train.setup import load_run


@pytest.mark.slow
def test_tiny_guided_run_writes_every_artefact_and_learns(tmp_path, capsys):
    run = tmp_path / "run"  # the one-step hypergradient: a meta step at every step of a short run
    assert main(["train", "--steps", "30", "--run-dir", str(run), "--set", "horizon=one-step", *TINY]) == 0
    printed = capsys.readouterr().out
    assert "dev BLEU" in printed and "learned learning_rate" in printed

    for name in ("config.json", "metrics.jsonl", "tokenizer.model", "learned_values.json", "run.png", "summary.json"):
        assert (run / name).is_file(), name
    assert list((run / "tensorboard").glob("events.out.tfevents.*"))
    # Checkpoints at each evaluation (15, 30); the best by dev loss is recorded.
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == [
        "best.json", "step_00000015", "step_00000015.json", "step_00000030", "step_00000030.json",
    ]  # fmt: skip

    config = json.loads((run / "config.json").read_text())
    assert config["optim"]["b1"] == 0.9  # resolved optimizer defaults are written out
    records = read_metrics(run)
    losses = [r["train_loss"] for r in records if "train_loss" in r]
    assert [r["step"] for r in records if "train_loss" in r] == list(range(1, 31))
    assert np.mean(losses[-5:]) < np.mean(losses[:5]) - 0.5
    multipliers = [r["value/learning_rate"] for r in records if "value/learning_rate" in r]
    assert multipliers[0] == 1.0 and len(set(multipliers)) > 1  # guided: it moved
    assert all("guide_loss" in r and "hypergrad/learning_rate" in r for r in records if "train_loss" in r)
    dev = [r for r in records if "dev_loss" in r]
    assert [r["step"] for r in dev] == [15, 30] and all(np.isfinite(r["dev_bleu"]) for r in dev)

    learned = json.loads((run / "learned_values.json").read_text())
    assert learned["guided"] == ["learning_rate"]
    assert learned["final"]["learning_rate"] == pytest.approx(learned["trajectory"]["learning_rate"][-1][1], rel=0.01)
    summary = json.loads((run / "summary.json").read_text())
    assert summary["dev_loss"] == dev[-1]["dev_loss"] and summary["tokens_per_second"] > 0

    state = load_run(run).state
    assert int(state.step) == 30
    np.testing.assert_allclose(np.exp(state.raw["learning_rate"]), learned["final"]["learning_rate"], rtol=1e-6)


@pytest.mark.slow
def test_the_default_guided_run_is_forward_mode_until_its_end_then_held(tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", "--steps", "40", "--run-dir", str(run), *TINY]) == 0
    g = json.loads((run / "config.json").read_text())["guidance"]
    assert (g["horizon"], g["until_step"], g["hold_mean_from"], g["forward_min_age"]) == ("forward", 16, 5, 20)
    records = [r for r in read_metrics(run) if "train_loss" in r]
    assert [r["step"] for r in records] == list(range(1, 41))
    guided = [r["step"] for r in records if "guide_loss" in r]
    assert guided == list(range(1, 17))  # forward-mode guidance to step 16 (0.4 × 40), then plain steps
    assert all("tangent_ratio/learning_rate" in r for r in records if "guide_loss" in r)
    held = {r["value/learning_rate"] for r in records[16:]}
    assert len(held) == 1  # held from there on, at the mean of the guided values from step 5
    said = "gradtune: step 17: guidance is over; values held at the mean of the guided steps from step 5: "
    assert said + f"learning_rate {held.pop():.4g}" in capsys.readouterr().err
    summary = json.loads((run / "summary.json").read_text())
    assert (summary["compute"]["guided_steps"], summary["compute"]["plain_steps"]) == (16, 24)
    assert summary["finished"] and np.isfinite(summary["dev_loss"])


@pytest.mark.slow
def test_no_guidance_holds_the_multiplier_and_skips_the_guide_pass(tmp_path, capsys):
    run = tmp_path / "base"
    args = ["train", "--steps", "10", "--no-guidance", "--run-dir", str(run), "--set", "lr_multiplier=0.5", *TINY]
    assert main(args) == 0
    records = [r for r in read_metrics(run) if "train_loss" in r]
    assert len(records) == 10
    assert not any("guide_loss" in r or "value/learning_rate" in r for r in records)
    first = records[0]["learning_rate"]
    assert first == pytest.approx(5e-3 * 0.5 / 5, rel=1e-5)  # base · warmup(1/5) · held multiplier 0.5


def test_a_run_directory_that_holds_a_run_is_refused(tmp_path, capsys):
    (tmp_path / "metrics.jsonl").write_text("")
    assert main(["train", "--steps", "1", "--run-dir", str(tmp_path), *TINY]) == 1
    assert "already holds a run" in capsys.readouterr().err


@pytest.mark.slow
def test_two_corpora_with_every_data_weight_guided(tmp_path, capsys):
    run = tmp_path / "weights"
    guided = "learning_rate,corpus_weights,bucket_weights,example_weights"
    args = ["train", "--steps", "10", "--run-dir", str(run), "--set", "corpus=lt-en,de=de-en", "--set",
            f"guided={guided}", "--set", "num_buckets=4", *TINY]  # fmt: skip
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "learned corpus weights: lt-en" in printed and "example weights: min" in printed
    corpora = json.loads((run / "corpus_weights.json").read_text())
    buckets = json.loads((run / "bucket_weights.json").read_text())
    assert [c["corpus"] for c in corpora] == ["lt-en", "de"] and len(buckets) == 4
    for rows in (corpora, buckets):  # mean 1 over the training tokens, and they moved
        tokens = [r["train_tokens"] for r in rows]
        assert np.average([r["weight"] for r in rows], weights=tokens) == pytest.approx(1.0, rel=1e-4)
        assert len({r["weight"] for r in rows}) == len(rows)
    config = json.loads((run / "config.json").read_text())
    assert config["guidance"]["guide_batch"] == "cycle"  # auto, resolved
    records = [r for r in read_metrics(run) if "train_loss" in r]
    assert all(f"value/bucket_weights/{i}" in r for r in records for i in range(4))
    lines = (run / "example_weights.tsv").read_text().splitlines()
    assert len(lines) == 1 + json.loads((run / "summary.json").read_text())["train_pairs"]
    state = load_run(run).state  # the example-weight rows restore from weight_counts.json
    assert state.raw["example_weights"].shape == (len(lines) - 1,)
