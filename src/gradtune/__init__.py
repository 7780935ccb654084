"""gradtune: learn hyper-parameters and data weights during training, by guidance."""

__version__ = "0.1.0"
