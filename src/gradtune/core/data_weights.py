"""Data weights: guided per-corpus, per-bucket and per-example weights of the training loss.

Each training token carries integer ids — its corpus, its bucket, its example — as arrays
shaped like the tokens (so packed rows, holding several examples, work). A token's loss
weight is the product of the weights its ids pick from each guided vector, and the
weighted loss is divided by the *unweighted* token count:

    L = Σ_t w_corpus[c_t] · w_bucket[b_t] · w_example[e_t] · ℓ_t / Σ_t 1

Dividing by the batch's total weight instead would make the loss invariant to a common
scale of the weights present, and the hypergradient of a batch drawn from one corpus (or
one bucket) exactly zero.

The weights are held at mean 1 over the training data, weighting each row by its share of
the training tokens (``GuidedSpec.frequencies``), so that they cannot act as a second
learning rate:

* corpus and bucket weights (a few rows): the normalised parametrisation
  ``w = act(r) / Σ_k f_k·act(r_k)``, differentiated exactly;
* example weights (one row per training example): the same normalisation, with the
  normaliser held constant in the hypergradient (``lazy``): a row's hypergradient is then
  exactly zero unless its example is in the batch, and a lazy Adam moves only those rows.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from gradtune.core.activations import Activation
from gradtune.core.guided import GuidedSpec

KINDS = ("corpus", "bucket", "example")  # the id arrays a batch carries: ids[kind]


def weight_name(kind: str) -> str:
    """The guided value of a kind of data weight: ``corpus`` → ``corpus_weights``."""
    return f"{kind}_weights"


NAMES = tuple(weight_name(k) for k in KINDS)


def data_weight_spec(
    kind: str,
    token_counts: Sequence[float] | np.ndarray,
    activation: Activation | None = None,
    meta_lr_scale: float = 1.0,
) -> GuidedSpec:
    """A guided weight vector with one row per corpus, bucket or example, all starting at 1.

    ``token_counts``: training tokens of each row; they set the mean-1 normalisation.
    ``activation``: ``exp`` (default) or e.g. ``Activation("sigmoid", 0, 2)``.
    """
    if kind not in KINDS:
        raise ValueError(f"unknown data weight {kind!r}; choose one of {', '.join(KINDS)}")
    counts = np.asarray(token_counts, np.float64)
    if counts.ndim != 1 or len(counts) == 0 or (counts < 0).any() or counts.sum() <= 0:
        raise ValueError(f"{kind} weights need a non-empty vector of non-negative token counts with a positive sum")
    activation = activation or Activation("exp")
    return GuidedSpec(
        weight_name(kind),
        1.0,
        activation,
        shape=(len(counts),),
        meta_lr_scale=meta_lr_scale,
        frequencies=tuple((counts / counts.sum()).tolist()),
        lazy=kind == "example",
    )


def token_weights(values: Mapping[str, jax.Array], ids: Mapping[str, jax.Array]) -> jax.Array | None:
    """Per-token loss weights: the product of every guided weight vector gathered by ids.

    ``values`` holds the (normalised) guided values by name; ``ids[kind]`` the token ids
    of each kind. ``None`` when no data weight is in ``values``.
    """
    weights = None
    for kind in KINDS:
        vector = values.get(weight_name(kind))
        if vector is None:
            continue
        if kind not in ids:
            raise ValueError(f"{weight_name(kind)} are guided but the batch carries no {kind} ids")
        w = jnp.take(vector, ids[kind], axis=0, mode="clip")
        weights = w if weights is None else weights * w
    return weights


def rows_present(ids: jax.Array, mask: jax.Array, size: int) -> jax.Array:
    """(size,) bool: which rows the unmasked tokens of ``ids`` point at."""
    hits = jnp.zeros(size, jnp.int32).at[ids.ravel()].max(mask.ravel().astype(jnp.int32), mode="drop")
    return hits > 0
