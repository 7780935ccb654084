"""gradtune's library: guided hyper-parameters for any JAX model (JAX and optax only)."""

from gradtune.core.activations import Activation
from gradtune.core.guided import GuidedSpec, clean_hypergrads, init_raw, meta_optimizer, raw_to_values
from gradtune.core.optimizers import OPTIMIZERS, make_optimizer, optimizer_def, with_hyperparams
from gradtune.core.schedules import parse_schedule
from gradtune.core.step import GuidedTrainer, TrainState, parse_value_key, value_key

__all__ = [
    "OPTIMIZERS",
    "Activation",
    "GuidedSpec",
    "GuidedTrainer",
    "TrainState",
    "clean_hypergrads",
    "init_raw",
    "make_optimizer",
    "meta_optimizer",
    "optimizer_def",
    "parse_schedule",
    "parse_value_key",
    "raw_to_values",
    "value_key",
    "with_hyperparams",
]
