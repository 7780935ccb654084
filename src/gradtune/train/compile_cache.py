"""JAX's persistent compilation cache, on for every run: a sweep's trials, a resumed run and
the test suite compile each step once per machine, not once per process."""

from __future__ import annotations

import os
from pathlib import Path

import jax

CACHE_DIR = Path(os.environ.get("GRADTUNE_COMPILATION_CACHE", Path.home() / ".cache" / "gradtune" / "xla"))


def enable_compilation_cache() -> None:
    """Point JAX's persistent cache at ``$GRADTUNE_COMPILATION_CACHE`` (default
    ``~/.cache/gradtune/xla``); ``GRADTUNE_COMPILATION_CACHE=off`` leaves it off."""
    if str(CACHE_DIR) == "off" or jax.config.jax_compilation_cache_dir:
        return
    try:
        CACHE_DIR.mkdir(parents=True, exist_ok=True)
    except OSError:  # a read-only home: compile as usual
        return
    jax.config.update("jax_compilation_cache_dir", str(CACHE_DIR))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.5)
