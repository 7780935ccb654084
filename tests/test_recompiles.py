"""A run compiles its plain and its guided step once each, whatever happens between steps.

The run's steps come from ``train.steps.make_steps``; the test keeps the ones it builds and
asks each jitted function for its executable cache (``_cache_size()``): one entry per
distinct call signature (shape, dtype, weak type, pytree structure, shardings,
commitment), each a compilation. Both must be 1 after a short run that changes everything
a run changes between steps: guided values moving every guided step and being reset,
``guide_every=2`` (plain steps in between), a new guide batch each guided step, a partial
last batch of an epoch, a partial last log interval, and an evaluation in the middle.
"""

from gradtune.data.batching import batch_shapes, training_batches
from gradtune.data.corpora import load_embedded
from gradtune.train import loop
from gradtune.train.config import load_config
from gradtune.train.inputs import load_data
from gradtune.train.steps import make_steps


def test_plain_and_guided_steps_compile_once_each(tmp_path, monkeypatch):
    # A small corpus, so that a short run crosses an epoch and meets its partial last batch.
    pairs = load_embedded("lt-en").examples[:320]
    corpus = tmp_path / "small.tsv"
    corpus.write_text("".join(f"{e.source}\t{e.target}\n" for e in pairs))
    cfg = load_config(
        None,
        [
            f"corpus={corpus}", "vocab_size=200", "min_guide=16", "row_len=32", "batch_rows=8", "guide_rows=4",
            "d_model=32", "num_heads=2", "mlp_dim=64", "encoder_layers=1", "decoder_layers=1",
            "guided=learning_rate,label_smoothing", "guide_every=2", "guidance.warmup_steps=1", "reset_every=7",
            "guide_batch=cycle", "steps=24", "log_every=5", "eval_every=12", "bleu_examples=2", "optim.warmup_steps=3",
        ],
    )  # fmt: skip
    built = []
    monkeypatch.setattr(loop, "make_steps", lambda *args: built.append(make_steps(*args)) or built[-1])
    loop.train(cfg, tmp_path / "run", progress=False)

    # The run's batch order, replayed: it crossed an epoch whose last batch was partial.
    encoded = load_data(cfg).encoded
    first_epoch = []
    for after, batch in training_batches(encoded["train"], batch_shapes(32, 8), cfg.train.seed):
        first_epoch.append(int((batch["tgt_seg"] > 0).any(axis=1).sum()))
        if after.epoch == 1:
            break
    assert len(first_epoch) < 24, "the run must cross an epoch"
    assert first_epoch[-1] < 8, "the epoch's last batch must be partial (empty rows)"
    (steps,) = built
    assert {"plain": steps.plain._cache_size(), "guided": steps.guided._cache_size()} == {"plain": 1, "guided": 1}
