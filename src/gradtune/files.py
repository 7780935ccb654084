"""Atomic file writes: a reader (or a crash) sees the old file or the new one, never half of one.

Every writer of gradtune goes through here: the bytes go to a temporary file beside the
target, are flushed to disk (``fsync``), and the temporary file is renamed over the target
(a rename within one folder is atomic on POSIX and Windows).
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any


def _temporary(path: Path) -> Path:
    # The target's suffix stays last, so that tools that infer a format from it (matplotlib) still can.
    return path.with_name(f".{path.stem}.tmp{path.suffix}")


@contextlib.contextmanager
def replacing(path: str | Path) -> Iterator[Path]:
    """A temporary path to write ``path``'s new contents to; renamed over ``path`` on success,
    removed on error."""
    path = Path(path)
    tmp = _temporary(path)
    try:
        yield tmp
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_bytes(path: str | Path, data: bytes) -> None:
    with replacing(path) as tmp:
        tmp.write_bytes(data)


def write_text(path: str | Path, text: str) -> None:
    with replacing(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_json(path: str | Path, payload: Any, indent: int = 1) -> None:
    write_text(path, json.dumps(payload, indent=indent) + "\n")
