"""What every benchmark here shares: realistic batches, steps built as the loop builds them,
and side-by-side timing (medians of interleaved repetitions, in one process).

The machine these numbers come from may be shared and noisy: a ratio is only meaningful
when both of its terms were measured in the same process, interleaved, and summarised by
their medians. Every script prints the machine state (cores, load average) beside its table.
"""

from __future__ import annotations

import itertools
import os
import platform
import statistics
import time
from collections.abc import Callable, Iterator

import numpy as np

from gradtune.data.batching import Batch, training_batches
from gradtune.train.config import Config
from gradtune.train.inputs import load_data


def encoded_corpus(cfg: Config) -> dict:
    """The run's encoded splits (embedded lt-en by default), its tokenizer trained exactly as a run trains it."""
    return load_data(cfg).encoded


def packed_batches(examples, rows: int, row_len: int, count: int, seed: int = 0, tags=None) -> list[Batch]:
    """The first ``count`` packed ``(rows, row_len)`` batches of ``examples``, as a run packs them
    (``tags``: per-example ids by kind, for data weights)."""
    batches = training_batches(examples, [(rows, row_len)], seed, tags=tags)
    return [batch for _, batch in itertools.islice(batches, count)]


def target_tokens(batch: Batch) -> int:
    """Target tokens of a batch, padding excluded (what tokens/s counts)."""
    return int(np.count_nonzero(batch["tgt_out"]))


def interleaved(
    candidates: dict[str, Callable[[], object]], repetitions: int, warmup: int = 1
) -> dict[str, list[float]]:
    """Seconds of each candidate per repetition, the candidates run in turn.

    Each candidate is a zero-argument callable that runs one measured unit to completion
    (it must block on its results). The order rotates every repetition, so no candidate
    always follows the same neighbour. ``warmup`` untimed rounds come first.
    """
    names = list(candidates)
    for _ in range(warmup):
        for name in names:
            candidates[name]()
    times: dict[str, list[float]] = {name: [] for name in names}
    for rep in range(repetitions):
        shift = rep % len(names)
        for name in names[shift:] + names[:shift]:
            start = time.perf_counter()
            candidates[name]()
            times[name].append(time.perf_counter() - start)
    return times


def median(values: list[float]) -> float:
    return statistics.median(values)


def cycle(items: list) -> Iterator:
    return itertools.cycle(items)


def cores() -> int:
    """Cores this process may run on (what XLA's CPU client sizes its thread pool by)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def machine_state() -> dict:
    """Where the numbers come from: CPU, cores, load averages at the time of the call."""
    load = os.getloadavg() if hasattr(os, "getloadavg") else (float("nan"),) * 3
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), cpu)
    except OSError:
        pass
    return {"cpu": cpu, "cores": cores(), "load_average_1_5_15": [round(x, 2) for x in load]}


def describe_machine(state: dict) -> str:
    load = ", ".join(f"{x:.1f}" for x in state["load_average_1_5_15"])
    return f"{state['cpu']}, {state['cores']} cores, load average {load} (1/5/15 min)"


def markdown_table(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(str(c)) for c in col) for col in zip(header, *rows, strict=True)]
    line = lambda cells: "| " + " | ".join(str(c).ljust(w) for c, w in zip(cells, widths, strict=True)) + " |"  # noqa: E731
    return "\n".join([line(header), "|" + "|".join("-" * (w + 2) for w in widths) + "|", *map(line, rows)])


def loop_steps(setup, seed: int = 0):
    """(plain_step, guided_step) exactly as a run builds them (``gradtune.train.steps``)."""
    from gradtune.train.steps import make_steps

    return tuple(make_steps(setup, seed))
