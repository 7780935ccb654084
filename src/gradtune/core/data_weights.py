"""Data weights: guided weights of the training loss, one vector per way of grouping the data.

Each training token carries integer ids — in gradtune's translation runs its corpus, its
bucket and its example; in yours whatever groups your data (a domain, a source) — as
arrays shaped like the tokens (so packed rows, holding several examples, work). A token's
loss weight is the product of the weights its ids pick from each guided vector, and the
weighted loss is divided by the *unweighted* token count:

    L = Σ_t Π_v w_v[id_v(t)] · ℓ_t / Σ_t 1

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


def data_weight_spec(
    name: str,
    token_counts: Sequence[float] | np.ndarray,
    activation: Activation | None = None,
    meta_lr_scale: float = 1.0,
    lazy: bool = False,
) -> GuidedSpec:
    """A guided weight vector, one row per group of the training data, all starting at 1.

    Args:
      name: the guided value's name, e.g. ``"corpus_weights"``.
      token_counts: training tokens of each row; they set the mean-1 normalisation.
      activation: ``exp`` (default) or e.g. ``Activation("sigmoid", 0, 2)``.
      meta_lr_scale: multiplies this vector's meta step.
      lazy: for very many rows (one per example): a step moves only the rows its batch
        touches, and the normaliser is held constant in the hypergradient.

    Returns:
      The ``GuidedSpec``; ``token_weights`` gathers its rows by the ids its caller names.
    """
    counts = np.asarray(token_counts, np.float64)
    if counts.ndim != 1 or len(counts) == 0 or (counts < 0).any() or counts.sum() <= 0:
        raise ValueError(f"{name} need a non-empty vector of non-negative token counts with a positive sum")
    return GuidedSpec(
        name,
        1.0,
        activation or Activation("exp"),
        shape=(len(counts),),
        meta_lr_scale=meta_lr_scale,
        frequencies=tuple((counts / counts.sum()).tolist()),
        lazy=lazy,
    )


def token_weights(
    values: Mapping[str, jax.Array], ids: Mapping[str, jax.Array], gather: Mapping[str, str]
) -> jax.Array | None:
    """Per-token loss weights: the product of every guided weight vector, each gathered by its ids.

    Args:
      values: the (normalised) guided values by name.
      ids: the batch's integer id arrays by key, shaped like its tokens.
      gather: weight vector name → the key of ``ids`` that picks its row for each token.

    Returns:
      The weights, shaped like the ids; ``None`` when no weight vector of ``gather`` is in ``values``.

    >>> w = token_weights({"domain_weights": jnp.array([0.5, 2.0])}, {"domain": jnp.array([[0, 1, 1]])},
    ...                   {"domain_weights": "domain"})
    >>> w.tolist()
    [[0.5, 2.0, 2.0]]
    """
    weights = None
    for name, key in gather.items():
        vector = values.get(name)
        if vector is None:
            continue
        if key not in ids:
            raise ValueError(f"{name} are guided but the batch carries no {key} ids")
        w = jnp.take(vector, ids[key], axis=0, mode="clip")
        weights = w if weights is None else weights * w
    return weights


def rows_present(ids: jax.Array, mask: jax.Array, size: int) -> jax.Array:
    """(size,) bool: which rows the unmasked tokens of ``ids`` point at."""
    hits = jnp.zeros(size, jnp.int32).at[ids.ravel()].max(mask.ravel().astype(jnp.int32), mode="drop")
    return hits > 0
