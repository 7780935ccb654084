"""Fixtures the tests share: the tiny run of ``configs/tiny.toml``."""

from pathlib import Path

import pytest

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
TINY_CONFIG = CONFIGS / "tiny.toml"
# `gradtune train` arguments of the tiny run; tests add --steps, --run-dir and --set.
TINY = ["--config", str(TINY_CONFIG), "--quiet"]


@pytest.fixture
def tiny_args() -> list[str]:
    return list(TINY)
