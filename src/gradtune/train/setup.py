"""Model and training state of a run, built fresh from its config or restored from disk."""

from __future__ import annotations

from pathlib import Path
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
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
from gradtune.train.inputs import TOKENIZER, WEIGHT_COUNTS, model_vocab_size
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
    built = build_state(cfg, model_vocab_size(cfg, tokenizer), read_counts(run_dir / WEIGHT_COUNTS))
    step = find_checkpoint(run_dir, which)
    state = TrainState(**restore_arrays(run_dir, step, built.state._asdict()))
    # translate and evaluate use what the run evaluated (schedule-free AdamW: its x sequence)
    params = evaluation_params(cfg.optim.optimizer, state.opt_state, state.params)
    return Run(cfg, tokenizer, built.graphdef, state._replace(params=params))


class InitFrom(NamedTuple):
    run_dir: Path
    which: str  # last, best or a step


def parse_init_from(text: str) -> InitFrom:
    """``RUN[:STEP]`` (``STEP``: a step number, ``last`` or ``best``; default ``last``), checked to be a run."""
    run, sep, which = text.rpartition(":")
    if not sep or not (which.isdigit() or which in ("last", "best")):
        run, which = text, "last"
    run_dir = Path(run)
    missing = [name for name in ("config.json", TOKENIZER) if not (run_dir / name).is_file()]
    if missing:
        raise RunError(f"train.init_from: {run_dir} is not a gradtune run (no {missing[0]}); give RUN[:STEP]")
    return InitFrom(run_dir, which)


def initial_params(source: InitFrom, like: Any) -> Any:
    """The parameters of ``source`` at its checkpoint, checked to have the shapes of ``like``."""
    params = load_run(source.run_dir, source.which).state.params
    theirs, ours = jax.tree_util.tree_flatten_with_path(params)[0], jax.tree_util.tree_flatten_with_path(like)[0]
    for (path, a), (_, b) in zip(theirs, ours, strict=False):
        if np.shape(a) != np.shape(b):
            raise RunError(
                f"train.init_from: {source.run_dir} has parameter {jax.tree_util.keystr(path)} of shape {np.shape(a)}, "
                f"this run's model {np.shape(b)}: the model's shape or vocabulary differs; use its model settings"
            )
    if len(theirs) != len(ours) or jax.tree.structure(params) != jax.tree.structure(like):
        raise RunError(f"train.init_from: {source.run_dir} holds another model than this run's; use its model settings")
    return jax.tree.map(lambda a, b: jnp.asarray(a, b.dtype), params, like)
