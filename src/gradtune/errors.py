"""One exception type per layer; the CLI prints their message (one line) and exits 1."""


class GradtuneError(Exception):
    """Base of every error gradtune raises on purpose: bad input, with the fix named."""


class DataError(GradtuneError, ValueError):
    """A corpus, split, tokenizer or batching problem (names the file and the fix)."""


class ConfigError(GradtuneError, ValueError):
    """A configuration problem (names the key or value and the valid choices)."""
