"""T5-style span corruption, `gradtune pretrain`, and `train --init-from`."""

import gzip
import json
import lzma
import random

import jax
import numpy as np
import pytest
from conftest import TINY_CONFIG

from gradtune.cli.main import main
from gradtune.data.corpora import load_embedded
from gradtune.data.span_corruption import corrupt, corrupted_pairs, noise_mask, pack_texts, text_length
from gradtune.data.tokenizer import EOS_ID
from gradtune.train.config import load_config
from gradtune.train.logbook import read_metrics
from gradtune.train.loop import build_session
from gradtune.train.setup import load_run

VOCAB = 1000


def uncorrupt(inputs: np.ndarray, targets: np.ndarray) -> list[int]:
    """The text back from an (input, target) pair: each sentinel of the input replaced by its span."""
    spans, current = {}, None
    for token in targets[:-1]:
        if token >= VOCAB - 200:
            current = int(token)
            spans[current] = []
        else:
            spans[current].append(int(token))
    text = []
    for token in inputs[:-1]:
        text.extend(spans[int(token)] if token >= VOCAB - 200 else [int(token)])
    return text


def test_span_corruption_keeps_every_token_once_at_the_asked_density_and_span_length():
    rng = np.random.default_rng(0)
    length = text_length(64, 0.15, 3.0)
    texts = [rng.integers(4, VOCAB - 200, rng.integers(2, length + 1)) for _ in range(10_000)]
    pairs = corrupted_pairs(texts, VOCAB, 0.15, 3.0, (0,))
    noise = spans = total = 0
    for text, (inputs, targets) in zip(texts, pairs, strict=True):
        assert inputs[-1] == EOS_ID and targets[-1] == EOS_ID and len(inputs) <= 64 and len(targets) <= 64
        assert uncorrupt(inputs, targets) == text.tolist()  # every token exactly once, in order
        in_sentinels = [t for t in inputs if t >= VOCAB - 200]
        out_sentinels = [t for t in targets if t >= VOCAB - 200]
        assert in_sentinels == out_sentinels == list(range(VOCAB - 1, VOCAB - 1 - len(in_sentinels), -1))
        if len(text) >= 20:  # the counts of long texts: short ones are bounded by "one of each"
            noise += len(targets) - 1 - len(out_sentinels)
            spans += len(out_sentinels)
            total += len(text)
    assert noise / total == pytest.approx(0.15, abs=0.01)
    assert noise / spans == pytest.approx(3.0, abs=0.2)


def test_corruption_of_a_known_mask_and_the_packing_of_short_lines():
    tokens, mask = np.arange(10, 18), np.array([0, 0, 1, 1, 0, 0, 1, 0], bool)
    inputs, targets = corrupt(tokens, mask, 100)
    assert inputs.tolist() == [10, 11, 99, 14, 15, 98, 17, EOS_ID]
    assert targets.tolist() == [99, 12, 13, 98, 16, EOS_ID]
    texts = list(pack_texts([[5, 6, 7], [8], [9, 10, 11], [12]], 4))  # 3-token lines still fill texts
    assert [t.tolist() for t in texts] == [[5, 6, 7, 8], [9, 10, 11, 12]]
    assert sum(noise_mask(30, 0.15, 3.0, random.Random(1))) in (4, 5)


@pytest.fixture(scope="module")
def text_files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("text")
    pairs = load_embedded("es-en").examples[:3000]
    with gzip.open(folder / "es.txt.gz", "wt", encoding="utf-8") as f:
        f.writelines(e.source + "\n" for e in pairs)
    with lzma.open(folder / "en.txt.xz", "wt", encoding="utf-8") as f:
        f.writelines(e.target + "\n" for e in pairs)
    return f"{folder / 'es.txt.gz'},{folder / 'en.txt.xz'}"


@pytest.fixture(scope="module")
def pretrained(text_files, tmp_path_factory):
    run = tmp_path_factory.mktemp("pretrain") / "run"
    args = ["pretrain", "--config", str(TINY_CONFIG), "--quiet", "--steps", "12", "--set", f"text={text_files}",
            "--set", "guided=learning_rate,b1,weight_decay", "--set", "eval_every=6",
            "--run-dir", str(run)]  # fmt: skip
    assert main(args) == 0
    return run


@pytest.mark.slow
def test_pretrain_logs_the_held_out_span_loss_and_resumes(pretrained, capsys):
    cfg = json.loads((pretrained / "config.json").read_text())
    assert cfg["data"]["objective"] == "span_corruption" and cfg["data"]["sentinels"] == 100
    evals = [r for r in read_metrics(pretrained) if "dev_loss" in r]
    assert [r["step"] for r in evals] == [6, 12] and all("dev_bleu" not in r for r in evals)
    assert evals[1]["dev_loss"] < evals[0]["dev_loss"]
    assert main(["pretrain", "--resume", str(pretrained), "--steps", "14", "--quiet"]) == 0
    assert json.loads((pretrained / "summary.json").read_text())["steps"] == 14


@pytest.mark.slow
def test_train_init_from_starts_from_the_pretrained_parameters_and_translates(pretrained, tmp_path, capsys):
    args = ["train", "--init-from", f"{pretrained}:12", "--config", str(TINY_CONFIG), "--quiet",
            "--set", "corpus=es-en", "--steps", "6", "--set", "eval_every=6",
            "--run-dir", str(tmp_path / "fine")]  # fmt: skip
    cfg = load_config(TINY_CONFIG, ["corpus=es-en", f"train.init_from={pretrained}:12", "data.sentinels=100"])
    session = build_session(cfg, tmp_path / "unused", None, resume=False)
    source = load_run(pretrained, "12").state.params
    for a, b in zip(jax.tree.leaves(source), jax.tree.leaves(session.initial.params), strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    assert int(session.initial.step) == 0  # a fresh optimizer and guided state
    assert main(args) == 0
    assert (tmp_path / "fine" / "tokenizer.model").read_bytes() == (pretrained / "tokenizer.model").read_bytes()
    (tmp_path / "src.txt").write_text("hola mundo\n")
    capsys.readouterr()
    assert main(["translate", "--run", str(tmp_path / "fine"), "--beam", "1", str(tmp_path / "src.txt")]) == 0
    assert capsys.readouterr().out.count("\n") == 1  # one translation, sentinels never output


def test_bad_pretraining_input_is_one_line(pretrained, tmp_path, capsys):
    (tmp_path / "empty.txt").write_text("\n\n")
    cases = [
        (["pretrain", "--set", f"text={tmp_path / 'empty.txt'}"], "the text file is empty"),
        (["pretrain", "--set", f"text={tmp_path / 'none.txt'}"], "no such text file"),
        (["train", "--init-from", str(tmp_path / "nothing")], "is not a gradtune run"),
        (["train", "--init-from", f"{pretrained}:999"], "has no checkpoint '999'"),
        (["train", "--init-from", str(pretrained), "--set", "d_model=64"], "the model's shape or vocabulary differs"),
        (["train", "--set", "text=a.txt"], "data.text"),
    ]
    for args, message in cases:
        full = [*args, "--config", str(TINY_CONFIG), "--quiet", "--steps", "1", "--run-dir", str(tmp_path / "run")]
        assert main(full) == 1, args
        err = capsys.readouterr().err
        assert message in err and "Traceback" not in err, (args, err)
    assert not (tmp_path / "run").exists()


@pytest.mark.slow
def test_the_quick_pretraining_experiment_compares_three_runs_and_keeps_finished_ones(tmp_path, capsys):
    out = tmp_path / "experiment"
    assert main(["pretraining-experiment", "--quick", "--quiet", "--out", str(out)]) == 0
    results = json.loads((out / "results.json").read_text())
    assert [r["run"] for r in results["rows"]] == ["fine-tuned from guided", "fine-tuned from held", "from scratch"]
    assert all(r["dev_sentences"] == 8 and r["dev_loss"] > 0 for r in results["rows"])
    fine = json.loads((out / "seed0" / "finetune-held" / "config.json").read_text())
    assert fine["train"]["init_from"] == str(out / "seed0" / "pretrain-held")
    scratch = out / "seed0" / "scratch"
    assert (scratch / "tokenizer.model").read_bytes() == (
        out / "seed0" / "pretrain-guided" / "tokenizer.model"
    ).read_bytes()
    guided = json.loads((out / "seed0" / "pretrain-guided" / "config.json").read_text())["guidance"]
    assert guided["enabled"] and guided["guided"] == "learning_rate,b1,weight_decay"
    capsys.readouterr()
    assert main(["pretraining-experiment", "--quick", "--quiet", "--out", str(out)]) == 0
    assert capsys.readouterr().out.count("done already") == 5
