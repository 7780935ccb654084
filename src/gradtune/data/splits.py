"""Deterministic train / guide / dev / test splits by a stable hash of each group key.

A group's split depends only on its key (BLAKE2b), never on the order or size of the
corpus, so repeated sources (or a Bible chapter's verses) never straddle splits. The guide
split is held out of training: the smallest-hash training groups until it holds
``max(guide_fraction · n_train, min_guide)`` pairs, as the original's 1% but at least 500.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict

from gradtune.data.corpora import Example
from gradtune.errors import DataError

SPLITS = ("train", "guide", "dev", "test")


def unit_hash(key: str, salt: str) -> float:
    """A stable pseudo-random number in [0, 1) for ``key``."""
    digest = hashlib.blake2b(key.encode("utf-8"), digest_size=8, person=salt.encode()[:16]).digest()
    return int.from_bytes(digest, "big") / 2**64


def split_examples(
    examples: list[Example],
    dev_fraction: float = 0.05,
    test_fraction: float = 0.05,
    guide_fraction: float = 0.01,
    min_guide: int = 500,
) -> dict[str, list[Example]]:
    if not (dev_fraction > 0 and test_fraction > 0 and dev_fraction + test_fraction < 0.5):
        raise DataError("dev_fraction and test_fraction must be > 0 and sum to under 0.5")
    splits: dict[str, list[Example]] = {name: [] for name in SPLITS}
    pool: dict[str, list[Example]] = defaultdict(list)
    for example in examples:
        u = unit_hash(example.group, "split")
        if u < dev_fraction:
            splits["dev"].append(example)
        elif u < dev_fraction + test_fraction:
            splits["test"].append(example)
        else:
            pool[example.group].append(example)

    n_train = sum(len(group) for group in pool.values())
    wanted = max(round(guide_fraction * n_train), min_guide)
    if wanted >= n_train // 2:
        raise DataError(
            f"only {n_train} training pairs: too few to hold out a guide split of {wanted}; "
            "use a bigger corpus or lower min_guide"
        )
    for key in sorted(pool, key=lambda k: unit_hash(k, "guide")):
        target = "guide" if len(splits["guide"]) < wanted else "train"
        splits[target].extend(pool[key])
    for name, split in splits.items():
        if not split:
            raise DataError(f"the {name} split is empty; use a bigger corpus or larger fractions")
    return splits
