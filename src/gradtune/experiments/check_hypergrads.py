"""Every optimizer × every guidable value: hypergradient against a central finite difference.

In float64, on a small random Transformer with dropout, after a few warm-up steps (b1's
and Adafactor decay's hypergradients are exactly 0 on the first step). A value passes when

    |hypergradient − fd| ≤ rtol·|fd| + atol,   atol = the finite difference's round-off,

with atol = 8·ε₆₄·max|F(r ± h)| / h: each evaluation of F carries a relative error of a few
ε₆₄, and the difference divides it by 2h. Values whose |fd| is below atol cannot be
confirmed by any finite difference; they are marked, not skipped.

The guided step itself is the only compiled function per optimizer: it gives the
hypergradient, and its guide loss at perturbed raw values gives F(r ± h).

Data weights (AdamW, a few corpus, bucket and example rows, on packed rows whose examples
carry random ids) are checked row by row. Example weights hold their mean-1 normaliser
constant in the hypergradient (``core.data_weights``); their finite difference is taken
the same way: with exp weights, ``act(r)/Z == act(r − log Z)``, so F is evaluated with the
normalisation switched off at raw values shifted by ``−log Z`` (Z from the unperturbed r).
A row absent from the batch must have a hypergradient of exactly 0.

Forward-mode hypergradients (``guidance.horizon = forward``) of every scalar AdamW value are
checked with decay 1 against central differences of the guide loss after three held
updates: the tangents must give the derivative through all of them.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from gradtune.core import OPTIMIZERS, GuidedSpec, GuidedTrainer, make_optimizer, meta_optimizer
from gradtune.core.data_weights import data_weight_spec
from gradtune.seq2seq.model import ModelConfig, Transformer
from gradtune.seq2seq.objectives import LAZY_WEIGHTS, make_losses, make_rows_present, weight_name
from gradtune.train.guidable import names_of
from gradtune.train.resolve import default_value_activation

EPS64 = float(np.finfo(np.float64).eps)


@dataclass(frozen=True)
class Row:
    optimizer: str
    value: str
    hypergrad: float
    fd: float
    atol: float
    rtol: float

    @property
    def error(self) -> float:
        return abs(self.hypergrad - self.fd)

    @property
    def passed(self) -> bool:
        return self.error <= self.rtol * abs(self.fd) + self.atol

    @property
    def below_atol(self) -> bool:
        return abs(self.fd) <= self.atol


def random_batch(
    rng: np.random.Generator, rows: int, length: int, vocab: int, sizes: dict[str, int] | None = None
) -> dict[str, np.ndarray]:
    """Rows packed with two examples each and two padding tokens at the end; with ``sizes``
    (kind → rows), each example also gets random corpus/bucket/example ids (``tgt_<kind>``)."""
    half, used = length // 2, length - 2
    index = np.arange(length)
    seg = np.where(index < half, 1, 2) * (index < used)
    pos = np.where(index < half, index, index - half) * (seg > 0)
    batch = {}
    for side in ("src", "tgt"):
        batch[f"{side}_seg"] = np.tile(seg, (rows, 1)).astype(np.int32)
        batch[f"{side}_pos"] = np.tile(pos, (rows, 1)).astype(np.int32)
    for name in ("src", "tgt_in", "tgt_out"):
        batch[name] = (rng.integers(4, vocab, (rows, length)) * (seg > 0)).astype(np.int32)
    for kind, size in (sizes or {}).items():
        ids = rng.integers(0, size, (rows, 2))  # one id per example (segment)
        batch[f"tgt_{kind}"] = np.where(seg == 1, ids[:, :1], ids[:, 1:]).astype(np.int32) * (seg > 0)
    return batch


VOCAB = 40


def tiny_losses(seed: int):
    """(params, train_loss, guide_loss) of a 1+1-layer d=16 Transformer in float64."""
    cfg = ModelConfig(vocab_size=VOCAB, d_model=16, num_heads=2, mlp_dim=32, encoder_layers=1, decoder_layers=1)
    graphdef, params = nnx.split(Transformer(cfg, nnx.Rngs(seed), dtype=jnp.float64))
    train_loss, guide_loss, _ = make_losses(graphdef)
    return params, train_loss, guide_loss


def fd_row(optimizer: str, value: str, hypergrad: float, loss_at, h: float, rtol: float) -> Row:
    """The row comparing ``hypergrad`` with the central difference of ``loss_at(±h)``."""
    plus, minus = loss_at(h), loss_at(-h)
    atol = 8 * EPS64 * max(abs(plus), abs(minus)) / h
    return Row(optimizer, value, hypergrad, (plus - minus) / (2 * h), atol, rtol)


def check_optimizer(name: str, seed: int = 0, warmup: int = 3, h: float = 1e-4, rtol: float = 1e-4) -> list[Row]:
    """Rows for every guidable value of optimizer ``name`` (call inside ``jax.enable_x64``)."""
    rng = np.random.default_rng(seed)
    vocab = VOCAB
    params, train_loss, guide_loss = tiny_losses(seed)
    definition = OPTIMIZERS[name]
    fixed = {"learning_rate": 1.0, "label_smoothing": 0.1, **definition.defaults}
    names = (*definition.guidable, *names_of("loss"))
    specs = tuple(GuidedSpec(n, fixed[n], default_value_activation(n, fixed[n])) for n in names)
    trainer = GuidedTrainer(
        train_loss, guide_loss, make_optimizer(name, definition.defaults), lambda step: 1e-2, specs,
        meta_optimizer(specs), fixed,
    )  # fmt: skip
    step = jax.jit(trainer.guided_step)
    state = trainer.init(params, jnp.float64)
    for i in range(warmup):
        state, _, _ = step(state, random_batch(rng, 3, 12, vocab), random_batch(rng, 2, 12, vocab), jax.random.key(i))

    batch, guide, key = random_batch(rng, 3, 12, vocab), random_batch(rng, 2, 12, vocab), jax.random.key(warmup)
    hypergrads = step(state, batch, guide, key)[1]

    def guide_loss_at(value: str, delta: float) -> float:
        raw = {**state.raw, value: state.raw[value] + delta}
        return float(step(state._replace(raw=raw), batch, guide, key)[1]["guide_loss"])

    return [
        fd_row(name, v, float(hypergrads[f"hypergrad/{v}"]), lambda d, v=v: guide_loss_at(v, d), h, rtol) for v in names
    ]


DATA_SIZES = {"corpus": 3, "bucket": 4, "example": 40}


def check_data_weights(seed: int = 0, warmup: int = 3, h: float = 1e-4, rtol: float = 1e-4) -> list[Row]:
    """Rows for corpus, bucket and example weights under AdamW (call inside ``jax.enable_x64``)."""
    rng = np.random.default_rng(seed)
    vocab = VOCAB
    params, train_loss, guide_loss = tiny_losses(seed)
    defaults = OPTIMIZERS["adamw"].defaults
    fixed = {"learning_rate": 1.0, "label_smoothing": 0.1, **defaults}
    specs = tuple(
        data_weight_spec(weight_name(kind), rng.integers(1, 50, size), lazy=weight_name(kind) in LAZY_WEIGHTS)
        for kind, size in DATA_SIZES.items()
    )  # random token counts: unequal frequencies

    def trainer_of(specs) -> GuidedTrainer:
        lazy = {s.name: s.shape[0] for s in specs if s.lazy}
        return GuidedTrainer(
            train_loss, guide_loss, make_optimizer("adamw", defaults), lambda step: 1e-2, specs,
            meta_optimizer(specs, learning_rate=0.05), fixed, make_rows_present(lazy) if lazy else None,
        )  # fmt: skip

    def batches():
        return random_batch(rng, 3, 12, vocab, DATA_SIZES), random_batch(rng, 2, 12, vocab)

    trainer = trainer_of(specs)
    step = jax.jit(trainer.guided_step)
    state = trainer.init(params, jnp.float64)
    for i in range(warmup):  # the weights move away from 1
        state, _, _ = step(state, *batches(), jax.random.key(i))
    (batch, guide), key = batches(), jax.random.key(warmup)
    hypergradients = jax.jit(trainer.hypergradients)
    _, grads, _ = hypergradients(state, batch, guide, key)

    # Example weights: the normaliser Z held fixed, F taken without normalisation at r − log Z.
    example = specs[2]
    held = replace(example, frequencies=None, lazy=False)
    z = float(np.sum(np.asarray(example.frequencies) * np.exp(np.asarray(state.raw[example.name]))))
    held_trainer = trainer_of((*specs[:2], held))
    held_raw = {**state.raw, example.name: state.raw[example.name] - np.log(z)}
    held_state = state._replace(raw=held_raw, meta_state=held_trainer.meta_optimizer.init(held_raw))
    held_loss = jax.jit(lambda s: held_trainer.hypergradients(s, batch, guide, key)[0])

    def guide_loss_at(name: str, row: int, delta: float) -> float:
        if name == example.name:
            raw = {**held_raw, name: held_raw[name].at[row].add(delta)}
            return float(held_loss(held_state._replace(raw=raw)))
        raw = {**state.raw, name: state.raw[name].at[row].add(delta)}
        return float(hypergradients(state._replace(raw=raw), batch, guide, key)[0])

    present = np.unique(batch["tgt_example"][batch["tgt_out"] != 0])
    absent = sorted(set(range(DATA_SIZES["example"])) - set(present.tolist()))
    checked = {s.name: list(range(s.shape[0])) for s in specs[:2]}
    checked[example.name] = [*present[:3].tolist(), absent[0]]
    rows = [
        fd_row(
            "adamw", f"{name}[{row}]", float(grads[name][row]), lambda d, n=name, r=row: guide_loss_at(n, r, d), h, rtol
        )
        for name, indices in checked.items()
        for row in indices
    ]
    if float(grads[example.name][absent[0]]) != 0.0:  # exactly zero, or the lazy update is wrong
        rows.append(Row("adamw", f"{example.name}[{absent[0]}] == 0", float(grads[example.name][absent[0]]), 0, 0, 0))
    return rows


def check_forward(
    seed: int = 0, warmup: int = 2, steps: int = 3, h: float = 1e-4, rtol: float = 1e-4, average: float = 0.0
) -> list[Row]:
    """Rows for the forward-mode hypergradient (``guidance.horizon = forward``, decay 1) of every
    scalar value AdamW guides: after ``warmup`` plain steps, the tangents carried through
    ``steps`` updates with the values held give dF(θ_k(r))/dr, against central differences of
    the guide loss after the same ``steps`` updates (call inside ``jax.enable_x64``). With
    ``average`` = β > 0 (``guidance.guide_average``) F is taken at the bias-corrected running
    average of θ_1 … θ_k instead, which the differences compute here on their own from the
    updates' parameters. The decay's bias (γ < 1 discounts older steps) is by design and not
    checked here."""
    from gradtune.core.forward import forward_hypergradients, init_tangents, propagate

    rng = np.random.default_rng(seed)
    params, train_loss, guide_loss = tiny_losses(seed)
    defaults = OPTIMIZERS["adamw"].defaults
    fixed = {"learning_rate": 1.0, "label_smoothing": 0.1, **defaults}
    names = (*OPTIMIZERS["adamw"].guidable, *names_of("loss"))
    specs = tuple(GuidedSpec(n, fixed[n], default_value_activation(n, fixed[n])) for n in names)
    trainer = GuidedTrainer(
        train_loss, guide_loss, make_optimizer("adamw", defaults), lambda step: 1e-2, specs,
        meta_optimizer(specs), fixed, forward_decay=1.0, guide_average=average,
    )  # fmt: skip
    plain = jax.jit(trainer.plain_step)
    state = trainer.init(params, jnp.float64)
    for i in range(warmup):
        state, _, _ = plain(state, random_batch(rng, 3, 12, VOCAB), jax.random.key(i))
    state = state._replace(tangents=init_tangents(trainer, state))  # r acts from here on
    batches = [(random_batch(rng, 3, 12, VOCAB), jax.random.key(warmup + i)) for i in range(steps)]
    guide = random_batch(rng, 2, 12, VOCAB)

    @jax.jit
    def run(raw):  # the tangents' hypergradients, and the guide loss after the held steps, at their average
        s, tangents, path = state._replace(raw=raw), state.tangents, []
        for batch, key in batches:
            params, opt_state, tangents, _, _ = propagate(trainer, s, tangents, batch, key, 1.0)
            s = s._replace(params=params, opt_state=opt_state, step=s.step + 1)
            path.append(params)
        n = len(path)  # F's point: the last parameters, or their bias-corrected running average
        weights = [(1 - average) * average ** (n - 1 - i) for i in range(n)] if average else [0.0] * (n - 1) + [1.0]
        at = jax.tree.map(lambda *xs: sum(w * x for w, x in zip(weights, xs, strict=True)) / sum(weights), *path)
        return forward_hypergradients(trainer, s.params, tangents, guide)[1], trainer.guide_loss(at, guide)

    hypergrads = run(state.raw)[0]

    def guide_loss_at(value: str, delta: float) -> float:
        return float(run({**state.raw, value: state.raw[value] + delta})[1])

    label = f"adamw, forward ×{steps}" + (f", average β {average:g}" if average else "")
    return [fd_row(label, v, float(hypergrads[v]), lambda d, v=v: guide_loss_at(v, d), h, rtol) for v in names]


def check_all(
    optimizers: list[str] | None = None, seed: int = 0, data_weights: bool = True, forward: bool = True
) -> list[Row]:
    with jax.enable_x64(True):
        rows = [row for name in optimizers or list(OPTIMIZERS) for row in check_optimizer(name, seed)]
        rows += check_data_weights(seed) if data_weights else []
        return rows + (check_forward(seed) + check_forward(seed, average=0.5) if forward else [])


def format_table(rows: list[Row]) -> str:
    lines = [
        f"{'optimizer':18s} {'value':20s} {'hypergradient':>14s} {'finite diff':>14s} {'error':>10s} {'atol':>10s}  ok"
    ]
    for r in rows:
        mark = "yes" if r.passed else "NO"
        if r.below_atol:
            mark += " (|fd| < atol)"
        lines.append(
            f"{r.optimizer:18s} {r.value:20s} {r.hypergrad:14.6e} {r.fd:14.6e} {r.error:10.2e} {r.atol:10.2e}  {mark}"
        )
    failed = sum(not r.passed for r in rows)
    lines.append(f"{len(rows) - failed}/{len(rows)} passed (rtol {rows[0].rtol:g}, float64, central differences)")
    return "\n".join(lines)
