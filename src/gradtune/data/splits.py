"""Deterministic train / guide / dev / test splits by a stable hash of each group key.

A group's split depends only on its key (BLAKE2b), never on the order of the corpus, so
repeated sources (or a Bible chapter's verses) never straddle splits. The guide split is
held out of training: the groups whose guide hash is below ``guide_fraction`` (1% of the
training pool, as the original's every-100th pair); when those hold fewer than
``min_guide`` pairs, the smallest-hash groups until it holds ``min_guide``. A user's guide
corpus replaces it: then every pair whose group occurs in it leaves the other splits.

What stays put when the corpus grows (pairs added, none removed or changed):

* dev and test are exactly what they were, plus new pairs: a group's dev/test/training
  membership is a function of its key alone;
* a training pair never moves into the guide split. While the ``min_guide`` floor is in
  force (small corpora), a guide pair may move back into training: the guide split then
  holds a fixed number of pairs, and new groups with smaller hashes take their place.
  Once 1% of the pool exceeds the floor, guide membership is a function of the key too.
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


def _guide_groups(pool: dict[str, list[Example]], guide_fraction: float, min_guide: int) -> set[str]:
    """Keys of the guide split's groups: hash below ``guide_fraction``, or enough for ``min_guide``."""
    hashes = {key: unit_hash(key, "guide") for key in pool}
    chosen = {key for key, u in hashes.items() if u < guide_fraction}
    if sum(len(pool[key]) for key in chosen) >= min_guide:
        return chosen
    chosen, size = set(), 0
    for key in sorted(pool, key=hashes.__getitem__):
        if size >= min_guide:
            break
        chosen.add(key)
        size += len(pool[key])
    return chosen


def split_examples(
    examples: list[Example],
    dev_fraction: float = 0.05,
    test_fraction: float = 0.05,
    guide_fraction: float = 0.01,
    min_guide: int = 500,
    guide: list[Example] | None = None,
) -> dict[str, list[Example]]:
    """``examples`` split into train, guide, dev and test (the guide split is ``guide`` if given)."""
    if not (dev_fraction > 0 and test_fraction > 0 and dev_fraction + test_fraction < 0.5):
        raise DataError("dev_fraction and test_fraction must be > 0 and sum to under 0.5")
    held = {e.group for e in guide} if guide else set()
    splits: dict[str, list[Example]] = {name: [] for name in SPLITS}
    pool: dict[str, list[Example]] = defaultdict(list)
    for example in examples:
        if example.group in held:
            continue
        u = unit_hash(example.group, "split")
        if u < dev_fraction:
            splits["dev"].append(example)
        elif u < dev_fraction + test_fraction:
            splits["test"].append(example)
        else:
            pool[example.group].append(example)

    n_pool = sum(len(group) for group in pool.values())
    if guide:
        splits["guide"] = list(guide)
        chosen: set[str] = set()
    else:
        chosen = _guide_groups(pool, guide_fraction, min_guide)
        if 2 * sum(len(pool[key]) for key in chosen) >= n_pool:
            raise DataError(
                f"only {n_pool} training pairs: too few to hold out a guide split of {min_guide}; "
                "use a bigger corpus or lower data.min_guide"
            )
    for key, group in pool.items():
        splits["guide" if key in chosen else "train"].extend(group)
    for name, split in splits.items():
        if not split:
            raise DataError(f"the {name} split is empty; use a bigger corpus or larger fractions")
    return splits
