"""SIGINT/SIGTERM during training: finish the step, checkpoint, exit cleanly."""

from __future__ import annotations

import contextlib
import signal
from collections.abc import Iterator
from dataclasses import dataclass


@dataclass
class StopRequest:
    signal: int | None = None

    @property
    def name(self) -> str:
        return signal.Signals(self.signal).name if self.signal else ""


@contextlib.contextmanager
def stop_requests() -> Iterator[StopRequest]:
    """Turn SIGINT and SIGTERM into a request the loop reads after each step.

    A second signal while the first is being honoured stops at once (KeyboardInterrupt).
    """
    request = StopRequest()

    def handle(signum, frame):
        if request.signal is not None:
            raise KeyboardInterrupt
        request.signal = signum

    previous = {s: signal.signal(s, handle) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield request
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
