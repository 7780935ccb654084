"""Model and training state of a run, built fresh from its config or restored from disk."""

from __future__ import annotations

from pathlib import Path
from typing import Any, NamedTuple

import sentencepiece as spm
from flax import nnx

from gradtune.core import TrainState
from gradtune.core.optimizers import evaluation_params
from gradtune.errors import ConfigError, GradtuneError
from gradtune.seq2seq.interface import model_class
from gradtune.seq2seq.objectives import make_losses
from gradtune.train.checkpoint import find_checkpoint, restore_arrays
from gradtune.train.config import Config, load_config
from gradtune.train.data_weights import read_counts
from gradtune.train.guidance import Setup, build_trainer
from gradtune.train.inputs import TOKENIZER, WEIGHT_COUNTS
from gradtune.train.resolve import model_fields


class RunError(GradtuneError):
    """A directory that is not a (usable) gradtune run."""


def model_config(cfg: Config, vocab_size: int) -> Any:
    """The model's config: its preset with the config's model fields laid over it."""
    return model_fields(cfg, vocab_size)


class Built(NamedTuple):
    model: Any  # the model's config (a ModelConfig for the Transformer)
    graphdef: nnx.GraphDef
    setup: Setup  # the trainer and what it guides
    state: TrainState  # the initial training state


class Run(NamedTuple):
    cfg: Config
    tokenizer: spm.SentencePieceProcessor
    graphdef: nnx.GraphDef
    state: TrainState  # at the checkpoint asked for; params are those the run evaluates


def build_state(cfg: Config, vocab_size: int, weight_counts=None) -> Built:
    """Model config, graphdef, trainer setup and initial training state of a run.

    ``weight_counts``: training tokens per corpus, bucket and example (for data weights).
    """
    model_cfg = model_config(cfg, vocab_size)
    graphdef, params = nnx.split(model_class(cfg.model.name)(model_cfg, nnx.Rngs(cfg.train.seed)))
    losses = make_losses(graphdef)
    setup = build_trainer(cfg, losses.train, losses.guide, weight_counts)
    return Built(model_cfg, graphdef, setup, setup.trainer.init(params))


def load_run(run_dir: Path, which: str = "last") -> Run:
    """The config, tokenizer, graphdef and training state of a run at checkpoint ``which``
    (``last``, ``best`` or a step)."""
    missing = [name for name in ("config.json", TOKENIZER) if not (run_dir / name).is_file()]
    if not run_dir.is_dir() or missing:
        raise RunError(
            f"{run_dir} is not a gradtune run ({'no such directory' if not run_dir.is_dir() else 'no ' + missing[0]}); "
            "pass a directory that `gradtune train` wrote (runs/...)"
        )
    try:
        cfg = load_config(run_dir / "config.json")
    except ConfigError as e:
        raise RunError(f"{run_dir}: its config.json cannot be used ({e})") from e
    tokenizer = spm.SentencePieceProcessor(model_file=str(run_dir / TOKENIZER))
    built = build_state(cfg, tokenizer.vocab_size(), read_counts(run_dir / WEIGHT_COUNTS))
    step = find_checkpoint(run_dir, which)
    state = TrainState(**restore_arrays(run_dir, step, built.state._asdict()))
    # translate and evaluate use what the run evaluated (schedule-free AdamW: its x sequence)
    params = evaluation_params(cfg.optim.optimizer, state.opt_state, state.params)
    return Run(cfg, tokenizer, built.graphdef, state._replace(params=params))
