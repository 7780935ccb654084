"""What a sequence-to-sequence model gives gradtune: the losses, training and beam search need
nothing else. ``model.name`` picks one: a registered name or any ``package.module:Class``.

A model class is an ``nnx.Module`` built as ``Class(config, rngs)``. Its ``config_class``
is a frozen dataclass with a ``vocab_size`` field (set from the tokenizer); the config
tree's ``model`` section sets those of its fields that the section has (``d_model``,
``num_heads``, …), and a ``presets`` dict (name → config), if the class has one, is what
``model.preset`` chooses from. Batches are dicts of (batch, length) int arrays: ``src``,
``src_seg``, ``src_pos``, ``tgt_in``, ``tgt_out``, ``tgt_seg``, ``tgt_pos`` (segment 0 =
padding; rows may pack several examples).
"""

from __future__ import annotations

import importlib
from typing import Any, Protocol, runtime_checkable

import jax

from gradtune.errors import ConfigError

MODELS = {"transformer": "gradtune.seq2seq.model:Transformer"}  # registered name → package.module:Class


@runtime_checkable
class Seq2SeqModel(Protocol):
    """The methods a model provides (``gradtune.seq2seq.model.Transformer`` is one)."""

    def hidden(self, batch: dict[str, jax.Array], key: jax.Array | None = None) -> jax.Array:
        """The decoder's final states (batch, tgt_len, d); dropout when ``key`` is given."""

    def output_embedding(self) -> jax.Array:
        """(vocab, d): the logits are ``hidden @ output_embedding().T``."""

    def __call__(self, batch: dict[str, jax.Array], key: jax.Array | None = None) -> jax.Array:
        """Next-token logits (batch, tgt_len, vocab)."""

    def encode(self, src: jax.Array, src_seg: jax.Array, src_pos: jax.Array, key: jax.Array | None = None) -> Any:
        """The encoder's memory of a batch of sources (one source per row when decoding)."""

    def memory_keys_values(self, memory: Any) -> Any:
        """Whatever decoding needs of the memory, computed once per source (a pytree whose
        leaves have the batch first: beam search repeats them per beam)."""

    def empty_cache(self, batch: int, max_len: int) -> Any:
        """The decoder's cache before the first position (a pytree, batch first)."""

    def decode_step(
        self, memory_kv: Any, src_seg: jax.Array, token: jax.Array, position: jax.Array, cache: Any
    ) -> tuple[jax.Array, Any]:
        """Logits (batch, vocab) after ``token`` (batch,) at ``position``, and the updated cache."""


def model_class(name: str) -> type:
    """The model class of ``model.name``: a registered name or ``package.module:Class``."""
    path = MODELS.get(name, name)
    module_name, sep, class_name = path.partition(":")
    if not sep or not module_name or not class_name:
        raise ConfigError(
            f"model.name is {name!r}; give a registered model ({', '.join(MODELS)}) or package.module:Class"
        )
    try:
        cls = getattr(importlib.import_module(module_name), class_name)
    except (ImportError, AttributeError) as e:
        raise ConfigError(f"model.name is {name!r}: cannot import it ({e}); check the name and PYTHONPATH") from e
    missing = [m for m in ("hidden", "output_embedding", "encode", "memory_keys_values", "empty_cache",
                           "decode_step") if not callable(getattr(cls, m, None))]  # fmt: skip
    if missing or not hasattr(cls, "config_class"):
        lacks = ", ".join([*missing, *([] if hasattr(cls, "config_class") else ["config_class"])])
        raise ConfigError(f"model.name is {name!r}: {path} lacks {lacks} (see gradtune.seq2seq.interface)")
    return cls
