"""Scores of training pairs (`gradtune score`), score buckets, `gradtune filter --by`, and the
noise-inside-one-corpus experiment (`gradtune noisy-corpus --inside`)."""

import json
import math

import numpy as np
import pytest
from flax import nnx

from gradtune.cli.main import main
from gradtune.data.batching import pack
from gradtune.data.corpora import Example
from gradtune.data.tokenizer import EOS_ID
from gradtune.errors import ConfigError, DataError
from gradtune.experiments.noisy_inside import KINDS, add_noise, detection, kept
from gradtune.seq2seq.loss import token_losses
from gradtune.seq2seq.model import ModelConfig, Transformer
from gradtune.train.config import DataConfig, load_config
from gradtune.train.data_weights import score_buckets
from gradtune.train.scores import (
    Scores,
    check_matches,
    combined,
    deranged,
    learned_weights,
    per_example_losses,
    read_scores,
    write_scores,
)


def random_scores(n=40, seed=0) -> Scores:
    rng = np.random.default_rng(seed)
    pairs = [(f"source {i}\twith a tab", f"target {i}") for i in range(n)]
    values = {"loss": rng.exponential(size=n), "dppl": rng.normal(size=n), "weight": rng.uniform(0.1, 2, n)}
    return Scores(["es-en"] * n, pairs, values)


def test_a_scores_file_reads_back_what_was_written(tmp_path):
    scores = random_scores()
    write_scores(tmp_path / "s.tsv", scores)
    back = read_scores(tmp_path / "s.tsv")
    assert back.corpora == scores.corpora
    assert back.pairs == [(s.replace("\t", " "), t) for s, t in scores.pairs]  # one field each
    assert set(back.values) == {"loss", "dppl", "weight"}
    for name, values in scores.values.items():
        np.testing.assert_allclose(back.values[name], values, rtol=1e-5)  # written with 6 digits
    assert (tmp_path / "s.tsv").read_text().splitlines()[0] == "corpus\tindex\tloss\tdppl\tweight\tsource\ttarget"


def test_cleanliness_is_higher_for_cleaner_pairs_whatever_the_score():
    scores = random_scores()
    np.testing.assert_array_equal(scores.cleanliness("loss"), -scores.values["loss"])  # a high loss flags noise
    np.testing.assert_array_equal(scores.cleanliness("dppl"), scores.values["dppl"])
    with pytest.raises(Exception, match=r"no 'bucket' score here"):
        scores.cleanliness("bucket")


def test_per_example_losses_are_each_pairs_mean_and_end_token_loss_alone():
    """Packed several to a row, each pair's mean token loss and end-of-sentence loss are what
    the model gives it alone in a batch of one (random pairs, a random model; float32, 1e-5)."""
    cfg = ModelConfig(vocab_size=60, d_model=32, num_heads=2, mlp_dim=64, encoder_layers=1, decoder_layers=1)
    graphdef, params = nnx.split(Transformer(cfg, nnx.Rngs(0)))
    rng = np.random.default_rng(0)
    pairs = [tuple(np.array([*rng.integers(3, 60, rng.integers(1, 7)), EOS_ID], np.int32) for _ in "st")
             for _ in range(9)]  # fmt: skip
    packed = per_example_losses(graphdef, params, pairs, rows=2, row_len=16)
    for i, pair in enumerate(pairs):
        alone = next(pack([pair], [0], rows=1, row_len=16))
        logits = nnx.merge(graphdef, params)(alone)
        losses = np.asarray(token_losses(logits, alone["tgt_out"]))[0, : len(pair[1])]
        np.testing.assert_allclose(packed.mean[i], losses.mean(), rtol=1e-5)
        np.testing.assert_allclose(packed.end[i], losses[-1], rtol=1e-5)


def test_deranged_sources_move_every_source_to_another_target_once():
    pairs = [(np.array([i, EOS_ID]), np.array([100 + i, EOS_ID])) for i in range(50)]
    swapped = deranged(pairs, seed=4)
    assert [t[0] for _, t in swapped] == [100 + i for i in range(50)]  # the targets stay
    sources = [int(s[0]) for s, _ in swapped]
    assert sorted(sources) == list(range(50)) and all(s != i for i, s in enumerate(sources))


def test_combined_flags_a_pair_that_any_one_detector_flags():
    rng = np.random.default_rng(1)
    dppl, end, contrast = rng.normal(size=(3, 100))
    dppl[7], end[8], contrast[9] = -9.0, -9.0, -9.0  # each the worst of one detector only
    score = combined(dppl, end, contrast)
    assert set(np.argsort(score)[:3]) == {7, 8, 9} and np.all(score[[7, 8, 9]] == 0.01)
    assert np.all((score > 0) & (score <= 1))
    np.testing.assert_array_equal(combined(dppl, dppl, dppl), (np.argsort(np.argsort(dppl)) + 1) / 100)


def test_a_bad_scores_file_is_one_clear_error(tmp_path):
    (tmp_path / "bad.tsv").write_text("a\tb\tc\n")
    with pytest.raises(DataError, match="not a scores file"):
        read_scores(tmp_path / "bad.tsv")
    (tmp_path / "short.tsv").write_text("corpus\tindex\tloss\tsource\ttarget\nx\t0\tnot-a-number\ts\tt\n")
    with pytest.raises(DataError, match=r"short\.tsv:2"):
        read_scores(tmp_path / "short.tsv")
    with pytest.raises(DataError, match="no such scores file"):
        read_scores(tmp_path / "missing")


def test_scores_of_other_data_do_not_match(tmp_path):
    scores = random_scores(5)
    examples = [Example(s, t, "g") for s, t in scores.pairs]
    check_matches(scores, examples, "here")  # the same pairs (tabs as spaces on both sides)
    with pytest.raises(DataError, match="scores 5 pairs, this run's training split has 4"):
        check_matches(scores, examples[:4], "here")
    with pytest.raises(DataError, match="pair 2"):
        check_matches(scores, [*examples[:2], Example("other", "pair", "g"), *examples[3:]], "here")


def test_score_buckets_are_equal_count_quantiles_lowest_first(tmp_path):
    scores = random_scores(80, seed=3)
    write_scores(tmp_path / "s.tsv", scores)
    examples = [Example(s, t, "g") for s, t in scores.pairs]
    d = DataConfig(bucket_by="score:dppl", scores=str(tmp_path / "s.tsv"), num_buckets=4)
    ids, names = score_buckets(d, examples)
    assert np.bincount(ids).tolist() == [20, 20, 20, 20]
    dppl = read_scores(tmp_path / "s.tsv").values["dppl"]
    assert all(dppl[ids == k].max() <= dppl[ids == k + 1].min() for k in range(3))
    assert len(names) == 4 and names[0].startswith("dppl ")
    with pytest.raises(DataError, match="no 'bucket' score"):
        score_buckets(DataConfig(bucket_by="score:bucket", scores=str(tmp_path / "s.tsv")), examples)


def test_score_buckets_are_checked_when_the_config_is_resolved():
    with pytest.raises(ConfigError, match=r"data\.scores"):
        load_config(None, ["data.bucket_by=score:dppl"])
    with pytest.raises(ConfigError, match=r"data\.scores"):
        load_config(None, ["data.scores=somewhere.tsv"])
    with pytest.raises(ConfigError, match=r"data\.bucket_by"):
        load_config(None, ["data.bucket_by=score:nonsense", "data.scores=x.tsv"])
    assert load_config(None, ["data.bucket_by=score:dppl", "data.scores=x.tsv"]).data.scores == "x.tsv"


def test_learned_weight_scores_are_each_pairs_weights_and_their_product():
    values = {"corpus_weights": np.array([2.0, 0.5]), "bucket_weights": np.array([1.0, 3.0]),
              "example_weights": np.array([1.0, 2.0, 0.25])}  # fmt: skip
    tags = {"corpus": np.array([0, 1, 1]), "bucket": np.array([1, 0, 1]), "example": np.arange(3)}
    scores = learned_weights(values, tags)
    assert scores["weight"].tolist() == [1.0, 2.0, 0.25]
    assert scores["bucket"].tolist() == [3.0, 1.0, 3.0]
    assert scores["whole"].tolist() == [6.0, 1.0, 0.375]
    assert set(learned_weights({"corpus_weights": values["corpus_weights"]}, tags)) == {"whole"}


def test_filter_by_each_score_keeps_the_cleanest(tmp_path, capsys):
    scores = random_scores(30, seed=5)
    write_scores(tmp_path / "s.tsv", scores)
    back = read_scores(tmp_path / "s.tsv")
    for by, order in (("loss", np.argsort(back.values["loss"])), ("dppl", np.argsort(-back.values["dppl"]))):
        assert main(["filter", "--scores", str(tmp_path / "s.tsv"), "--by", by, "--keep", "0.3"]) == 0
        captured = capsys.readouterr()
        kept_pairs = [tuple(line.split("\t")) for line in captured.out.splitlines()]
        assert kept_pairs == [back.pairs[i] for i in sorted(order[:9])]
        assert f"kept 9 of 30 examples ({by}" in captured.err
    assert main(["filter", "--scores", str(tmp_path / "s.tsv"), "--by", "bucket"]) == 1
    assert "no 'bucket' score" in capsys.readouterr().err
    assert main(["filter", "--scores", str(tmp_path / "s.tsv"), "--by", "dppl", "--keep", "1.5"]) == 1
    assert "--keep" in capsys.readouterr().err


def test_the_noise_of_each_kind_is_what_it_says():
    examples = [Example(f"fuente {i} " * 3, " ".join(f"w{i}_{k}" for k in range(9)), f"g{i}") for i in range(200)]
    foreign = [f"deutsch {j}" for j in range(50)]
    noisy, kind = add_noise(examples, 0.3, foreign, seed=1)
    assert (kind != "").sum() == 60 and {k: (kind == k).sum() for k in KINDS} == dict.fromkeys(KINDS, 15)
    for e, n, k in zip(examples, noisy, kind, strict=True):
        assert n.source == e.source and n.group == e.group
        if k == "":
            assert n == e
        elif k == "copy":
            assert n.target == e.source
        elif k == "other_language":
            assert n.target in foreign
        elif k == "truncated":
            assert n.target == " ".join(e.target.split()[:3])
        else:  # another pair's target, never its own
            assert n.target != e.target and n.target in {x.target for x in examples}
    shuffled = kind == "shuffled"
    assert sorted(n.target for n, s in zip(noisy, shuffled, strict=True) if s) == sorted(
        e.target for e, s in zip(examples, shuffled, strict=True) if s
    )


def test_detection_of_known_rankings():
    kind = np.array(["", "", "copy", "", "shuffled", "truncated", "other_language", ""])
    flags = np.array([0.0, 1, 9, 2, 8, 7, 6, 3])  # every noisy pair flagged above every clean one
    scores = Scores(["c"] * 8, [("s", "t")] * 8, {"loss": flags})
    found = detection(scores, "loss", kind)
    assert found["auc"] == 1.0 and found["precision_at_noise_rate"] == 1.0
    assert found["auc_per_kind"] == dict.fromkeys(KINDS, 1.0)
    reverse = detection(Scores(["c"] * 8, [("s", "t")] * 8, {"dppl": flags}), "dppl", kind)  # dppl: high = clean
    assert reverse["auc"] == 0.0 and reverse["precision_at_noise_rate"] == 0.0
    assert kept(np.array([3.0, 1, 2, 2, 0]), 0.6).tolist() == [0, 2, 3]  # ties keep the data order


@pytest.mark.slow
def test_quick_noise_inside_experiment_ranks_the_noise_above_chance(tmp_path, capsys):
    out = tmp_path / "inside"
    assert main(["noisy-corpus", "--inside", "--quick", "--quiet", "--run-dir", str(out)]) == 0
    printed = capsys.readouterr().out
    results = json.loads((out / "results.json").read_text())
    kinds = results["noise"]["kinds"]
    assert set(kinds) == set(KINDS) and min(kinds.values()) > 0
    noisy, n = sum(kinds.values()), results["train_pairs"]
    # Under chance a ranking's AUC has standard error √((n₊ + n₋ + 1) / (12 n₊ n₋)) (0.023 here);
    # the best candidate must beat 0.5 by three of them. Measured: combined 0.77 (loss 0.73, weight 0.70,
    # bucket 0.70, dppl 0.69, dppl_end 0.66, contrast 0.63).
    se = math.sqrt((n + 1) / (12 * noisy * (n - noisy)))
    best = results["rankings"][results["best"]]
    assert best["auc"] > 0.5 + 3 * se
    assert set(results["rankings"]) == {"loss", "weight", "dppl", "dppl_end", "contrast", "combined", "bucket"}
    assert all(set(r["auc_per_kind"]) == set(KINDS) for r in results["rankings"].values())
    by_data = {r["data"]: r for r in results["retrain"]}
    assert by_data["clean (oracle)"]["noisy_pairs"] == 0 and by_data["all data"]["train_pairs"] == n
    assert by_data[f"kept by {results['best']}"]["train_pairs"] == math.ceil(0.7 * n)
    assert "precision" in printed and "retrained on" in printed

    scores = read_scores(out / "scoring")  # `gradtune score` on the scoring run gives its scores again
    assert main(["score", "--run", str(out / "scoring"), "--finetune-steps", "0", "--quiet",
                 "--out", str(tmp_path / "again.tsv")]) == 0  # fmt: skip
    again = read_scores(tmp_path / "again.tsv")
    assert again.pairs == scores.pairs and set(again.values) == {"loss", "weight", "whole"}
    np.testing.assert_allclose(again.values["loss"], scores.values["loss"], rtol=1e-4)
    np.testing.assert_allclose(again.values["weight"], scores.values["weight"], rtol=1e-4)
    assert main(["filter", "--run", str(out / "buckets"), "--by", "bucket", "--keep", "0.5"]) == 0
    assert len(capsys.readouterr().out.splitlines()) == math.ceil(n / 2)
    assert main(["filter", "--run", str(out / "retrain" / "all-seed0"), "--by", "dppl"]) == 1  # never scored
    assert "no such scores file" in capsys.readouterr().err
    assert main(["score", "--run", str(out / "retrain" / "all-seed0"), "--quiet"]) == 1  # its data came from elsewhere
    assert "trained on other pairs than its config makes" in capsys.readouterr().err
    assert main(["noisy-corpus", "--inside", "--quick", "--quiet", "--run-dir", str(out), "--set", "train.seed=3"]) == 1
    assert "other settings" in capsys.readouterr().err
