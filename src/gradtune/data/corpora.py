"""Parallel corpora as lists of ``Example``: the embedded ones and TSV files.

A TSV corpus has ``source<TAB>target`` per line, optionally a third column with a group
key (examples sharing a key never straddle splits; by default the key is the source).
Files may be plain, ``.gz`` or ``.xz``.
"""

from __future__ import annotations

import gzip
import io
import lzma
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import IO

from gradtune.errors import DataError

EMBEDDED = {
    "lt-en": "Lithuanian→English LibreOffice UI strings (MPL-2.0), the default",
    "es-en": "Spanish→English Bible verses, Reina-Valera 1909 ↔ King James (public domain)",
    "de-en": "German→English LibreOffice help sentences (MPL-2.0)",
}


@dataclass(frozen=True)
class Example:
    source: str
    target: str
    group: str  # split key: pairs with the same group land in the same split


def _open_text(path: Path | str, raw: IO[bytes] | None = None) -> IO[str]:
    name = str(path)
    stream = raw if raw is not None else open(path, "rb")  # noqa: SIM115
    if name.endswith(".gz"):
        stream = gzip.GzipFile(fileobj=stream)
    elif name.endswith(".xz"):
        stream = lzma.LZMAFile(stream)  # noqa: SIM115 — closed with the returned wrapper
    return io.TextIOWrapper(stream, encoding="utf-8")


def parse_tsv(lines, name: str) -> list[Example]:
    """Examples from TSV lines; a bad line is an error naming ``name`` and the line number."""
    examples = []
    for number, line in enumerate(lines, 1):
        fields = line.rstrip("\n").rstrip("\r").split("\t")
        if len(fields) not in (2, 3):
            raise DataError(
                f"{name}:{number}: expected 'source<TAB>target' (optionally a third group "
                f"column), found {len(fields)} tab-separated field(s)"
            )
        source, target = fields[0].strip(), fields[1].strip()
        examples.append(Example(source, target, fields[2] if len(fields) == 3 else source))
    if not examples:
        raise DataError(f"{name}: the corpus is empty; give a TSV file with source<TAB>target lines")
    return examples


def read_tsv(path: Path | str) -> list[Example]:
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such corpus file; give an embedded name ({', '.join(EMBEDDED)}) or a TSV path")
    try:
        with _open_text(path) as f:
            return parse_tsv(f, str(path))
    except UnicodeDecodeError as e:
        raise DataError(f"{path}: not UTF-8 text ({e.reason} at byte {e.start}); convert it to UTF-8") from e


def load_embedded(name: str) -> list[Example]:
    if name not in EMBEDDED:
        raise DataError(f"unknown embedded corpus {name!r}; choose one of {', '.join(EMBEDDED)}")
    resource = resources.files("gradtune.data") / "embedded" / f"{name}.tsv.gz"
    with resource.open("rb") as raw, _open_text(f"{name}.tsv.gz", raw) as f:
        return parse_tsv(f, f"embedded:{name}")


def load_corpus(spec: str) -> list[Example]:
    """An embedded corpus by name, or a TSV file by path."""
    return load_embedded(spec) if spec in EMBEDDED else read_tsv(spec)
