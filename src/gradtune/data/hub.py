"""WMT corpora from the HuggingFace hub (``datasets``, an optional extra: ``pip install -e .[hub]``).

``wmt19:lt-en`` is the training split of the hub's ``wmt/wmt19`` dataset, config ``lt-en``
(a reversed pair such as ``wmt14:en-de`` loads config ``de-en`` with the sides swapped). The
cache (``$HF_HOME``, by default ``~/.cache/huggingface``) is always tried first, offline;
only when the corpus is not there and the hub answers is it downloaded. With no cache and
no network the error says so at once, instead of the library's retry loop.
"""

from __future__ import annotations

import contextlib
import os
import socket
from collections.abc import Iterator
from urllib.parse import urlparse

from gradtune.data.corpora import Corpus, Example
from gradtune.errors import DataError

# Dataset name → (hub repository, its language-pair configs).
HUB_DATASETS: dict[str, tuple[str, tuple[str, ...]]] = {
    "wmt14": ("wmt/wmt14", ("cs-en", "de-en", "fr-en", "hi-en", "ru-en")),
    "wmt15": ("wmt/wmt15", ("cs-en", "de-en", "fi-en", "fr-en", "ru-en")),
    "wmt16": ("wmt/wmt16", ("cs-en", "de-en", "fi-en", "ro-en", "ru-en", "tr-en")),
    "wmt17": ("wmt/wmt17", ("cs-en", "de-en", "fi-en", "lv-en", "ru-en", "tr-en", "zh-en")),
    "wmt18": ("wmt/wmt18", ("cs-en", "de-en", "et-en", "fi-en", "kk-en", "ru-en", "tr-en", "zh-en")),
    "wmt19": ("wmt/wmt19", ("cs-en", "de-en", "fi-en", "gu-en", "kk-en", "lt-en", "ru-en", "zh-en")),
}


def hub_config(dataset: str, pair: str) -> tuple[str, str]:
    """(repository, config) of ``dataset:pair``; an unknown name or pair is an error."""
    if dataset not in HUB_DATASETS:
        raise DataError(f"unknown hub dataset {dataset!r} in {dataset}:{pair}; choose one of {', '.join(HUB_DATASETS)}")
    repo, pairs = HUB_DATASETS[dataset]
    source, _, target = pair.partition("-")
    if pair in pairs:
        return repo, pair
    if f"{target}-{source}" in pairs:
        return repo, f"{target}-{source}"
    raise DataError(f"{dataset} has no pair {pair!r}; its pairs (either direction): {', '.join(pairs)}")


@contextlib.contextmanager
def _offline() -> Iterator[None]:
    """Offline mode for ``datasets`` and ``huggingface_hub`` (they read the variable at import)."""
    import datasets
    from huggingface_hub import constants

    saved = datasets.config.HF_HUB_OFFLINE, constants.HF_HUB_OFFLINE
    datasets.config.HF_HUB_OFFLINE = constants.HF_HUB_OFFLINE = True
    try:
        yield
    finally:
        datasets.config.HF_HUB_OFFLINE, constants.HF_HUB_OFFLINE = saved


def hub_reachable(timeout: float = 3.0) -> bool:
    """Whether the hub's host accepts a connection (the user may also forbid it: HF_HUB_OFFLINE=1)."""
    if os.environ.get("HF_HUB_OFFLINE", "").upper() in ("1", "ON", "YES", "TRUE"):
        return False
    from huggingface_hub import constants

    host = urlparse(constants.ENDPOINT).hostname or "huggingface.co"
    try:
        socket.create_connection((host, 443), timeout=timeout).close()
    except OSError:
        return False
    return True


def load_hub(dataset: str, pair: str, corpus: int = 0) -> Corpus:
    """The training split of ``dataset:pair`` (e.g. ``wmt19``, ``lt-en``) as a corpus."""
    name = f"{dataset}:{pair}"
    repo, config = hub_config(dataset, pair)
    try:
        import datasets
    except ImportError:
        raise DataError(
            f"{name}: hub corpora need the 'datasets' library; install it with pip install -e '.[hub]'"
        ) from None
    try:
        with _offline():
            table = datasets.load_dataset(repo, config, split="train")
    except (ConnectionError, FileNotFoundError):
        if not hub_reachable():
            raise DataError(
                f"{name}: not in the HuggingFace cache ({datasets.config.HF_DATASETS_CACHE}) and the hub cannot "
                f"be reached; on a machine with a network run `gradtune prepare {name}` (it caches {repo} "
                "there), then copy that cache folder here or point HF_HOME at a copy"
            ) from None
        table = datasets.load_dataset(repo, config, split="train")
    source, _, target = pair.partition("-")  # columns are by language, whatever the config's order
    columns = table.flatten().data  # Arrow columns: far faster to read than rows
    sources = columns.column(f"translation.{source}").to_pylist()
    targets = columns.column(f"translation.{target}").to_pylist()
    examples = [Example(s.strip(), t.strip(), s.strip(), corpus) for s, t in zip(sources, targets, strict=True)]
    if not examples:
        raise DataError(f"{name}: the hub's training split is empty; choose another pair")
    return Corpus(name, examples)
