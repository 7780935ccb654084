"""One vocabulary for where the data comes from (``data.corpus``, ``gradtune prepare``).

::

    SOURCES  := ENTRY [ "," ENTRY ]...
    ENTRY    := [ NAME "=" ] LOCATION
    LOCATION := lt-en | es-en | de-en        an embedded corpus
              | DATASET ":" PAIR             a hub corpus: wmt14 … wmt19, e.g. wmt19:lt-en
              | PATH                         a TSV file: source<TAB>target[<TAB>group]
              | SOURCE_PATH "+" TARGET_PATH  two line-aligned text files, e.g. train.lt+train.en

Files may be plain, ``.gz`` or ``.xz``. Several entries make one corpus whose examples
remember the index of their entry (``Example.corpus``); ``NAME`` (letters, digits, ``_.-``)
labels an entry in reports, by default the location itself. Examples:
``de-en``, ``web=crawl.tsv.gz,wmt19:lt-en``, ``europarl.de.xz+europarl.en.xz``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

from gradtune.data.corpora import EMBEDDED, Corpus, load_embedded, read_text_pair, read_tsv
from gradtune.data.hub import load_hub
from gradtune.errors import DataError

NAME = re.compile(r"[\w.-]+")
HUB = re.compile(r"([A-Za-z]\w*):([A-Za-z]{2,3}-[A-Za-z]{2,3})")
SYNTAX = "NAME=LOCATION entries separated by commas; a location is lt-en, wmt19:lt-en, a TSV path or SRC+TGT files"


@dataclass(frozen=True)
class Source:
    name: str
    kind: str  # "embedded", "hub", "tsv" or "text pair"
    location: tuple[str, ...]  # (name,), (dataset, pair), (path,) or (source path, target path)


def parse_source(entry: str) -> Source:
    """One ``[NAME=]LOCATION`` entry."""
    name, sep, location = entry.partition("=")
    name, location = (name.strip(), location.strip()) if sep else ("", name.strip())
    if sep and not NAME.fullmatch(name):
        raise DataError(f"corpus name {name!r} in {entry!r}: use letters, digits, '_', '.' or '-'")
    if not location:
        raise DataError(f"empty corpus entry {entry!r}; expected {SYNTAX}")
    if location in EMBEDDED:
        return Source(name or location, "embedded", (location,))
    if hub := HUB.fullmatch(location):
        return Source(name or location, "hub", hub.groups())
    if "+" in location:
        source_path, _, target_path = location.partition("+")
        if not source_path or not target_path or "+" in target_path:
            raise DataError(f"{location!r}: a two-file corpus is SOURCE_PATH+TARGET_PATH, e.g. train.lt+train.en")
        return Source(name or location, "text pair", (source_path, target_path))
    return Source(name or location, "tsv", (location,))


def parse_sources(spec: str) -> list[Source]:
    """Every entry of a comma-separated ``SOURCES`` spec; names must differ."""
    sources = [parse_source(entry) for entry in spec.split(",")]
    names = [s.name for s in sources]
    if duplicated := sorted({n for n in names if names.count(n) > 1}):
        raise DataError(f"corpus name(s) {', '.join(duplicated)} given twice in {spec!r}; name each entry NAME=...")
    return sources


def load_source(source: Source, corpus: int = 0, strict: bool = False) -> Corpus:
    """The examples of one source, each marked with the corpus index ``corpus``."""
    if source.kind == "embedded":
        loaded = load_embedded(source.location[0], corpus)
    elif source.kind == "hub":
        loaded = load_hub(*source.location, corpus=corpus)
    elif source.kind == "text pair":
        loaded = read_text_pair(*source.location, strict=strict, corpus=corpus)
    else:
        loaded = read_tsv(source.location[0], strict=strict, corpus=corpus)
    return replace(loaded, name=source.name)


def load_sources(spec: str, strict: bool = False) -> list[Corpus]:
    """Every corpus of ``spec``, in order; corpus *i*'s examples carry ``corpus=i``."""
    return [load_source(source, i, strict) for i, source in enumerate(parse_sources(spec))]
