"""Model and training state of a run, built fresh from its config or restored from disk."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import sentencepiece as spm
from flax import nnx

from gradtune.core import TrainState
from gradtune.errors import ConfigError
from gradtune.seq2seq.model import Transformer, preset
from gradtune.seq2seq.objectives import make_losses
from gradtune.train.checkpoint import find_checkpoint, restore_arrays
from gradtune.train.config import Config, load_config
from gradtune.train.data_weights import read_counts
from gradtune.train.guidance import build_trainer

WEIGHT_COUNTS = "weight_counts.json"  # training tokens per corpus, bucket and example


def model_config(cfg: Config, vocab_size: int):
    overrides = {k: v for k, v in asdict(cfg.model).items() if k != "preset" and v is not None}
    try:
        model_cfg = preset(cfg.model.preset, vocab_size=vocab_size, **overrides)
    except ValueError as e:
        raise ConfigError(f"model.preset: {e}") from e
    if model_cfg.d_model % model_cfg.num_heads:
        raise ConfigError(
            f"model.d_model ({model_cfg.d_model}) must be a multiple of num_heads ({model_cfg.num_heads})"
        )
    return model_cfg


def build_state(cfg: Config, vocab_size: int, weight_counts=None):
    """Model config, graphdef, trainer setup and initial training state of a run.

    ``weight_counts``: training tokens per corpus, bucket and example (for data weights).
    """
    model_cfg = model_config(cfg, vocab_size)
    graphdef, params = nnx.split(Transformer(model_cfg, nnx.Rngs(cfg.train.seed)))
    train_loss, guide_loss, _ = make_losses(graphdef)
    setup = build_trainer(cfg, train_loss, guide_loss, weight_counts)
    return model_cfg, graphdef, setup, setup.trainer.init(params)


def load_run(run_dir: Path, which: str = "last"):
    """(config, tokenizer, graphdef, training state) of a run at checkpoint ``which``
    (``last``, ``best`` or a step)."""
    cfg = load_config(run_dir / "config.json")
    tokenizer = spm.SentencePieceProcessor(model_file=str(run_dir / "tokenizer.model"))
    _, graphdef, _, like = build_state(cfg, tokenizer.vocab_size(), read_counts(run_dir / WEIGHT_COUNTS))
    step = find_checkpoint(run_dir, which)
    return cfg, tokenizer, graphdef, TrainState(**restore_arrays(run_dir, step, like._asdict()))
