"""Bring your own model: an MLP on scikit-learn's bundled digits, trained with ``gradtune.core`` alone.

No translation, no Flax: a two-layer MLP written as plain JAX functions of a params dict.
One run guides its learning rate and weight decay (AdamW) by the gradient of a held-out
guide loss; the same run with the values held is the baseline. Both start from the same
parameters and see the same batches, so the difference is the guidance.

    python examples/digits_mlp.py            # about 20 seconds on a laptop CPU
    python examples/digits_mlp.py --steps 300 --lr-multiplier 0.1
"""

from __future__ import annotations

import argparse
import itertools

import jax
import jax.numpy as jnp
import numpy as np
from sklearn.datasets import load_digits

from gradtune.core import Activation, GuidedSpec, GuidedTrainer, make_optimizer, meta_optimizer, parse_schedule


def init_mlp(key: jax.Array, sizes: tuple[int, ...] = (64, 128, 10)) -> dict:
    params = {}
    for i, (n_in, n_out) in enumerate(itertools.pairwise(sizes)):
        key, sub = jax.random.split(key)
        params[f"w{i}"] = jax.random.normal(sub, (n_in, n_out)) * jnp.sqrt(2.0 / n_in)
        params[f"b{i}"] = jnp.zeros(n_out)
    return params


def loss(params: dict, batch: tuple[jax.Array, jax.Array]) -> jax.Array:
    """Mean cross-entropy of the MLP's logits."""
    x, y = batch
    h = jax.nn.relu(x @ params["w0"] + params["b0"])
    logits = h @ params["w1"] + params["b1"]
    return -jnp.mean(jnp.take_along_axis(jax.nn.log_softmax(logits), y[:, None], axis=1))


def accuracy(params: dict, batch) -> float:
    x, y = batch
    logits = jax.nn.relu(x @ params["w0"] + params["b0"]) @ params["w1"] + params["b1"]
    return float(jnp.mean(jnp.argmax(logits, -1) == y))


def splits(seed: int = 0):
    """Digits (8×8 images, 10 classes) split into train 1,200 / guide 200 / test the rest."""
    digits = load_digits()
    x, y = (digits.data / 16.0).astype(np.float32), digits.target.astype(np.int32)
    order = np.random.default_rng(seed).permutation(len(y))
    x, y = x[order], y[order]
    return (x[:1200], y[:1200]), (x[1200:1400], y[1200:1400]), (x[1400:], y[1400:])


def make_trainer(guided: bool, lr_multiplier: float) -> GuidedTrainer:
    specs = (
        GuidedSpec("learning_rate", lr_multiplier, Activation("exp")),
        GuidedSpec("weight_decay", 1e-3, Activation("sigmoid", 0.0, 4e-3)),
    )
    fixed = {"learning_rate": lr_multiplier, "weight_decay": 1e-3}
    return GuidedTrainer(
        train_loss=lambda params, batch, key, values: (loss(params, batch), {}),
        guide_loss=loss,
        optimizer=make_optimizer("adamw", {"weight_decay": 1e-3}),
        schedule=parse_schedule("constant * linear_warmup", 1e-3, warmup_steps=20),
        specs=specs if guided else (),
        meta_optimizer=meta_optimizer(specs if guided else (), learning_rate=3e-2),
        fixed=fixed,
    )


def run(guided: bool, steps: int = 200, lr_multiplier: float = 1.0, seed: int = 0) -> dict:
    """Train the MLP; returns its test loss and accuracy and the final guided values."""
    train, guide, test = splits(seed)
    trainer = make_trainer(guided, lr_multiplier)
    state = trainer.init(init_mlp(jax.random.key(seed)))
    step = jax.jit(trainer.guided_step if guided else lambda s, b, g, k: trainer.plain_step(s, b, k))
    rng = np.random.default_rng(seed + 1)
    for t in range(steps):
        rows = rng.choice(len(train[1]), 64, replace=False)
        state, _, _ = step(state, (train[0][rows], train[1][rows]), guide, jax.random.key(t))
    values = {k: float(v) for k, v in trainer.values(state.raw).items()}
    return {"test_loss": float(loss(state.params, test)), "test_accuracy": accuracy(state.params, test), **values}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--lr-multiplier", type=float, default=1.0, help="initial learning-rate multiplier")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    for guided in (False, True):
        result = run(guided, args.steps, args.lr_multiplier, args.seed)
        learned = (
            f"learning-rate multiplier {result['learning_rate']:.3g}, weight decay {result['weight_decay']:.3g}"
            if guided
            else "values held"
        )
        print(f"{'guided' if guided else 'held':6s}  test loss {result['test_loss']:.4f}  "
              f"accuracy {result['test_accuracy']:.3f}  ({learned})")  # fmt: skip


if __name__ == "__main__":
    main()
