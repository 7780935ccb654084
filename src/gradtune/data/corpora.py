"""Parallel corpora as lists of ``Example``: the embedded ones, TSV files, pairs of text files.

A TSV corpus has ``source<TAB>target`` per line, optionally a third column with a group
key (examples sharing a key never straddle splits; by default the key is the source). A
two-file corpus has one sentence per line in each file, line *i* of one translating line
*i* of the other. Files may be plain, ``.gz`` or ``.xz``. A line that is not UTF-8 is
skipped and counted, or with ``strict`` an error naming the file and line.
"""

from __future__ import annotations

import codecs
import gzip
import lzma
import zlib
from collections.abc import Iterable, Iterator
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
    corpus: int = 0  # index of its corpus among the run's sources (per-corpus data weights)


@dataclass(frozen=True)
class Corpus:
    name: str
    examples: list[Example]
    invalid_utf8: int = 0  # lines (or line pairs) skipped because they were not UTF-8


NumberedLines = Iterable[tuple[int, str]]


def _open_binary(path: Path | str, raw: IO[bytes] | None = None) -> IO[bytes]:
    name = str(path)
    stream = raw if raw is not None else open(path, "rb")  # noqa: SIM115 — closed with the returned wrapper
    if name.endswith(".gz"):
        return gzip.GzipFile(fileobj=stream)
    if name.endswith(".xz"):
        return lzma.LZMAFile(stream)
    return stream


def _decoded(raw_lines: Iterable[bytes], name: str, strict: bool) -> Iterator[tuple[int, str | None]]:
    """(line number, text) per line; text is None for a line that is not UTF-8 (unless strict).
    A UTF-8 byte-order mark at the start of the file is not text: it is dropped."""
    for number, raw in enumerate(raw_lines, 1):
        if number == 1 and raw.startswith(codecs.BOM_UTF8):
            raw = raw[len(codecs.BOM_UTF8) :]
        try:
            yield number, raw.decode("utf-8").rstrip("\n").rstrip("\r")
        except UnicodeDecodeError as e:
            if strict:
                raise DataError(
                    f"{name}:{number}: not UTF-8 ({e.reason} at byte {e.start}); convert the file to UTF-8, "
                    "or leave out --strict (data.strict) to skip such lines"
                ) from e
            yield number, None


def _read_lines(path: Path, name: str, strict: bool) -> list[tuple[int, str | None]]:
    """Every decoded line of a plain, ``.gz`` or ``.xz`` file; a damaged or truncated
    compressed file is one error naming it."""
    try:
        with _open_binary(path) as f:
            return list(_decoded(f, name, strict))
    except (OSError, EOFError, zlib.error, lzma.LZMAError) as e:
        detail = getattr(e, "strerror", None) or str(e) or type(e).__name__
        kind = "a gzip" if name.endswith(".gz") else "an xz" if name.endswith(".xz") else "a text"
        raise DataError(
            f"{name}: unreadable as {kind} file ({detail}); it may be damaged or truncated: fetch or "
            "write it again, or give it uncompressed"
        ) from e


def _check_file(path: Path) -> None:
    if path.is_dir():
        raise DataError(f"{path}: a directory, not a corpus file; give a TSV file or SOURCE+TARGET text files")
    if not path.is_file():
        raise DataError(
            f"{path}: no such corpus file; give an embedded name ({', '.join(EMBEDDED)}), a hub name "
            "(wmt19:lt-en), a TSV path or SOURCE+TARGET text files"
        )


def read_text_lines(path: Path | str, strict: bool = False) -> tuple[list[str], int]:
    """The non-empty lines of a monolingual text file (plain, ``.gz`` or ``.xz``), and how many
    were skipped as not UTF-8; an empty or unreadable file is one error naming it."""
    path = Path(path)
    if path.is_dir():
        raise DataError(f"{path}: a directory, not a text file; give a file with one sentence or document per line")
    if not path.is_file():
        raise DataError(f"{path}: no such text file; give a file with one sentence or document per line")
    numbered = _read_lines(path, str(path), strict)
    lines = [line.strip() for _, line in numbered if line is not None and line.strip()]
    invalid = sum(line is None for _, line in numbered)
    if numbered and invalid == len(numbered):
        raise DataError(f"{path}: not UTF-8 text (no line decodes); convert it to UTF-8, e.g. with iconv")
    if not lines:
        raise DataError(f"{path}: the text file is empty; give a file with one sentence or document per line")
    return lines, invalid


def _finish(name: str, examples: list[Example], lines: int, invalid: int) -> Corpus:
    if lines == 0:
        raise DataError(f"{name}: the corpus is empty; give a file with one pair per line")
    if invalid == lines:
        raise DataError(f"{name}: not UTF-8 text (no line decodes); convert it to UTF-8, e.g. with iconv")
    return Corpus(name, examples, invalid)


def parse_tsv(lines: NumberedLines, name: str, corpus: int = 0) -> list[Example]:
    """Examples from numbered TSV lines; a bad line is an error naming ``name`` and the line number."""
    examples = []
    for number, line in lines:
        fields = line.split("\t")
        if len(fields) not in (2, 3):
            raise DataError(
                f"{name}:{number}: expected 'source<TAB>target' (optionally a third group column), "
                f"found {len(fields)} tab-separated field(s); fix that line or remove it"
            )
        source, target = fields[0].strip(), fields[1].strip()
        examples.append(Example(source, target, fields[2] if len(fields) == 3 else source, corpus))
    return examples


def read_tsv(path: Path | str, strict: bool = False, corpus: int = 0) -> Corpus:
    """A TSV corpus (``source<TAB>target[<TAB>group]`` per line)."""
    path = Path(path)
    _check_file(path)
    numbered = _read_lines(path, str(path), strict)
    valid = [(n, text) for n, text in numbered if text is not None]
    return _finish(str(path), parse_tsv(valid, str(path), corpus), len(numbered), len(numbered) - len(valid))


def read_text_pair(source_path: Path | str, target_path: Path | str, strict: bool = False, corpus: int = 0) -> Corpus:
    """A corpus of two line-aligned plain-text files (one sentence per line, group = source)."""
    source_path, target_path = Path(source_path), Path(target_path)
    name = f"{source_path}+{target_path}"
    _check_file(source_path)
    _check_file(target_path)
    sources = _read_lines(source_path, str(source_path), strict)
    targets = _read_lines(target_path, str(target_path), strict)
    if len(sources) != len(targets):
        raise DataError(
            f"{name}: {len(sources)} source lines but {len(targets)} target lines; the files must be "
            "line-aligned (line i of one translates line i of the other)"
        )
    examples = [
        Example(s.strip(), t.strip(), s.strip(), corpus)
        for (_, s), (_, t) in zip(sources, targets, strict=True)
        if s is not None and t is not None
    ]
    return _finish(name, examples, len(sources), len(sources) - len(examples))


def load_embedded(name: str, corpus: int = 0) -> Corpus:
    if name not in EMBEDDED:
        raise DataError(f"unknown embedded corpus {name!r}; choose one of {', '.join(EMBEDDED)}")
    resource = resources.files("gradtune.data") / "embedded" / f"{name}.tsv.gz"
    with resource.open("rb") as raw, _open_binary(f"{name}.tsv.gz", raw) as f:
        numbered = list(_decoded(f, f"embedded:{name}", strict=True))
    return _finish(name, parse_tsv(numbered, f"embedded:{name}", corpus), len(numbered), 0)
