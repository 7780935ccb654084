#!/usr/bin/env python3
"""Rebuild the parallel corpora embedded in gradtune from Debian packages.

Writes gzip-compressed TSV files (``source<TAB>target[<TAB>group]``, UTF-8, no header):

* ``lt-en.tsv.gz``: Lithuanian→English LibreOffice UI strings (``libreoffice-l10n-lt``).
* ``es-en.tsv.gz``: Spanish→English Bible verses, Reina-Valera 1909 ↔ King James
  (``sword-text-sparv``, ``sword-text-kjv``), with a ``Book chapter`` group column.
* ``de-en.tsv.gz``: German→English LibreOffice help paragraphs
  (``libreoffice-help-de``, ``libreoffice-help-en-us``).

Packages are fetched with ``apt-get download`` and unpacked with ``dpkg-deb -x``; nothing is
installed. Only the standard library is needed, plus ``pysword`` for ``es-en``. The output is
deterministic: running the script twice gives byte-identical files.

Usage::

    python scripts/build_embedded_corpora.py [--work DIR] [--out DIR] [--only lt-en ...]
"""

from __future__ import annotations

import argparse
import gzip
import html
import re
import struct
import subprocess
import sys
import tempfile
import unicodedata
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from html.parser import HTMLParser
from pathlib import Path
from typing import Protocol

Row = tuple[str, ...]
Verse = tuple[str, int, int]  # (book, chapter, verse)

PACKAGES = {
    "lt-en": ["libreoffice-l10n-lt"],
    "es-en": ["sword-text-sparv", "sword-text-kjv"],
    "de-en": ["libreoffice-help-de", "libreoffice-help-en-us"],
}
DEFAULT_OUT = Path(__file__).resolve().parent.parent / "src" / "gradtune" / "data" / "embedded"


# --------------------------------------------------------------------------- shared helpers


class OsisCleaner(Protocol):
    """What this script needs of ``pysword.cleaner.OSISCleaner`` (imported lazily)."""

    def clean(self, text: str) -> str: ...


def normalize_space(text: str) -> str:
    """NFC-normalize, drop control and format characters, and collapse all whitespace to one space."""
    text = unicodedata.normalize("NFC", text)
    text = "".join(ch for ch in text if ch.isspace() or unicodedata.category(ch) not in ("Cc", "Cf"))
    return " ".join(text.split())


def same_text(a: str, b: str) -> bool:
    """True when two strings are equal ignoring case and whitespace (an untranslated copy)."""
    return " ".join(a.casefold().split()) == " ".join(b.casefold().split())


def step_counter(*steps: str) -> Counter[str]:
    """A counter whose report lists ``steps`` first, in this order, even when they stay zero."""
    return Counter(dict.fromkeys(steps, 0))


def report(name: str, counts: Counter[str]) -> None:
    """Print the cleaning counts of one corpus, in insertion order."""
    print(f"[{name}]")
    for key, value in counts.items():
        print(f"  {key:<44} {value:>8}")


def write_tsv_gz(path: Path, rows: Iterable[Row]) -> int:
    """Write rows as gzip-9 TSV with a fixed header (no name, mtime 0); return the row count."""
    lines = []
    for row in rows:
        if any(not field or "\t" in field or "\n" in field or "\r" in field for field in row):
            raise ValueError(f"bad row for {path.name}: {row!r}")
        lines.append("\t".join(row) + "\n")
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as raw, gzip.GzipFile(filename="", mode="wb", fileobj=raw, compresslevel=9, mtime=0) as gz:
        gz.write("".join(lines).encode("utf-8"))
    return len(lines)


def deb_version(deb: Path) -> str:
    """The Version field of a .deb file."""
    return subprocess.run(
        ["dpkg-deb", "-f", str(deb), "Version"], check=True, capture_output=True, text=True
    ).stdout.strip()


def fetch_and_extract(packages: list[str], work: Path) -> Path:
    """``apt-get download`` the packages into ``work/debs`` and ``dpkg-deb -x`` them into ``work/root``."""
    debs_dir, root = work / "debs", work / "root"
    debs_dir.mkdir(parents=True, exist_ok=True)
    root.mkdir(parents=True, exist_ok=True)
    missing = [p for p in packages if not list(debs_dir.glob(f"{p}_*.deb"))]
    if missing:
        download = ["apt-get", "download", *missing]
        if subprocess.run(download, cwd=debs_dir).returncode != 0:
            print("apt-get download failed; running apt-get update once and retrying", file=sys.stderr)
            subprocess.run(["apt-get", "update"], check=True)
            subprocess.run(download, cwd=debs_dir, check=True)
    for package in packages:
        found = sorted(debs_dir.glob(f"{package}_*.deb"))
        if len(found) != 1:
            raise SystemExit(f"expected one {package}_*.deb in {debs_dir}, found {len(found)}")
        print(f"  {package} {deb_version(found[0])}")
        subprocess.run(["dpkg-deb", "-x", str(found[0]), str(root)], check=True)
    return root


# --------------------------------------------------------------------------- lt-en: LibreOffice UI


# Format specifiers and placeholders, in every syntax found in LibreOffice catalogs.
PLACEHOLDER = re.compile(
    r"""
      %\d+\$[-+ #0]*\d*(?:\.\d+)?[a-zA-Z]      # %1$s
    | %\(\w+\)[-+ #0]*\d*(?:\.\d+)?[a-zA-Z]    # %(name)s
    | %[-+#0]*\d*(?:\.\d+)?l*[sdiufxXcpgeE]\b  # %s %d %5.2f %ld
    | %\d+                                     # %1
    | %[A-Za-z][A-Za-z0-9_]*%?                 # %PRODUCTNAME %OBJECT_NAME%
    | \$\d+                                    # $1
    | \$\{[^}]*\}                              # ${x}
    | \$\([^)]*\)                              # $(ARG1)
    | \$\[[^\]]*\]                             # $[officename]
    | \$[A-Za-z_]\w*\$?                        # $exception_type$ $ARG
    | \{[^{}\s]*\}                             # {name} {0}
    | \#\w+\#                                  # #PAGENUMBER# #lib#
    | \#\d+                                    # #1
    | (?<![\w#])\#(?![\w#])                    # a lone # standing for a number or name
    | \$\#\$                                   # $#$
    | &(?:[a-zA-Z][a-zA-Z0-9]*|\#\d+|\#x[0-9a-fA-F]+);  # &amp; &#1234;
    """,
    re.VERBOSE,
)
MARKUP = re.compile(r"<[^<>]*>")
# Mnemonic markers: "~File", "_File", "Brea_ks", a leading "&File", a trailing "(_F)" or "(~F)".
ACCEL_SUFFIX = re.compile(r"\s*\([_~&]\w\)")
ACCEL_TILDE = re.compile(r"~(?=\w)")
ACCEL_AMP = re.compile(r"(?:(?<=^)|(?<=\s))&(?=\w)")


def has_placeholder_or_markup(text: str) -> bool:
    """True when ``text`` contains a format specifier, placeholder, entity or markup tag."""
    return bool(PLACEHOLDER.search(text) or MARKUP.search(text))


def strip_accelerators(text: str) -> str:
    """Remove keyboard-accelerator markers; a lone ``_`` counts, the ones in ``a_b_c`` do not."""
    text = ACCEL_SUFFIX.sub("", text)
    text = ACCEL_TILDE.sub("", text)
    text = ACCEL_AMP.sub("", text)
    if text.count("_") == 1:
        text = re.sub(r"_(?=\S)", "", text)
    return text


def read_mo(path: Path) -> Iterator[tuple[str, str, str]]:
    """Yield ``(context, msgid, msgstr)`` from a GNU .mo file; plurals give their first form."""
    data = path.read_bytes()
    magic = struct.unpack("<I", data[:4])[0]
    endian = "<" if magic == 0x950412DE else ">"
    _, count, ids_at, strs_at = struct.unpack(endian + "4I", data[4:20])
    for i in range(count):
        id_len, id_off = struct.unpack(endian + "2I", data[ids_at + 8 * i : ids_at + 8 * i + 8])
        str_len, str_off = struct.unpack(endian + "2I", data[strs_at + 8 * i : strs_at + 8 * i + 8])
        key = data[id_off : id_off + id_len].decode("utf-8")
        value = data[str_off : str_off + str_len].decode("utf-8")
        context, _, msgid = key.rpartition("\x04")
        yield context, msgid.split("\x00")[0], value.split("\x00")[0]


CATALOG_STEPS = (
    "catalogs",
    "messages",
    "dropped: empty translation",
    "dropped: placeholder or markup",
    "dropped: line counts differ",
    "multi-line messages split",
    "dropped: empty side",
    "dropped: untranslated (same text)",
    "dropped: duplicate pair",
)


def catalog_pairs(mo_files: list[Path], counts: Counter[str]) -> list[Row]:
    """(translation, English) pairs of gettext catalogs, cleaned and deduplicated; counts each step."""
    counts["catalogs"] += len(mo_files)
    seen: set[Row] = set()
    rows: list[Row] = []
    for mo in mo_files:
        for _context, english, translation in read_mo(mo):
            if not english:
                continue  # the catalog header
            counts["messages"] += 1
            if not translation.strip():
                counts["dropped: empty translation"] += 1
                continue
            if has_placeholder_or_markup(english) or has_placeholder_or_markup(translation):
                counts["dropped: placeholder or markup"] += 1
                continue
            en_lines = strip_accelerators(english).strip("\n").split("\n")
            xx_lines = strip_accelerators(translation).strip("\n").split("\n")
            if len(en_lines) != len(xx_lines):
                counts["dropped: line counts differ"] += 1
                continue
            if len(en_lines) > 1:
                counts["multi-line messages split"] += 1
            for en_line, xx_line in zip(en_lines, xx_lines, strict=True):
                source, target = normalize_space(xx_line), normalize_space(en_line)
                if not source or not target:
                    counts["dropped: empty side"] += 1
                elif same_text(source, target):
                    counts["dropped: untranslated (same text)"] += 1
                elif (source, target) in seen:
                    counts["dropped: duplicate pair"] += 1
                else:
                    seen.add((source, target))
                    rows.append((source, target))
    return rows


def build_lt_en(root: Path) -> list[Row]:
    """Lithuanian→English pairs from LibreOffice's UI message catalogs."""
    mo_dir = root / "usr/lib/libreoffice/program/resource/lt/LC_MESSAGES"
    mo_files = sorted(mo_dir.glob("*.mo"))
    if not mo_files:
        raise SystemExit(f"no .mo files under {mo_dir}")
    counts = step_counter(*CATALOG_STEPS)
    rows = catalog_pairs(mo_files, counts)
    counts["pairs written"] = len(rows)
    report("lt-en", counts)
    return rows


# --------------------------------------------------------------------------- es-en: Bibles

SPANISH_MODULE, ENGLISH_MODULE = "spaRV1909eb", "engKJV2006eb"
UPPER = "A-ZÁÉÍÓÚÜÑÂÊÎÔÛ"
LOWER = "a-záéíóúüñâêîôû"
# A drop-cap run: all-caps words ("EN", "Y ACONTECIÓ"), then a word in lower or title case.
DROP_CAP = re.compile(rf"(?<![\w])((?:[{UPPER}]+[\s,;:.!?¡¿]+)*[{UPPER}]+)(?=[\s,;:.!?¡¿]+[{UPPER}]?[{LOWER}])")
CAPS_WORD = re.compile(rf"\b[{UPPER}]{{2,}}\b")
# Psalm 119 prefixes each stanza of eight verses with the name of a Hebrew letter ("ALEPH. ...").
HEBREW_LETTERS = (
    "ALEPH|BETH|GIMEL|DALETH|HE|VAU|ZAIN|CHETH|TETH|JOD|CAPH|LAMED|MEM|NUN|SAMECH|AIN|PE|TZADDI|COPH|RESH|SIN|TAU"
)
ACROSTIC = re.compile(rf"^(?:{HEBREW_LETTERS})\b\.?\s*")
# Spanish pronouns the module adds as <transChange> right after a verb (díjo+le, sáca+lo).
ENCLITICS = {"lo", "la", "los", "las", "le", "les", "me", "te", "se", "nos", "os"}
# Words before such a pronoun that are not verbs, so the pronoun stays a separate word.
NOT_VERBS = {"no", "que", "como", "y", "os", "ellos", "cuánto", "gentes", "dios", "jehová", "josué"}
TRANS_CHANGE = re.compile(r"<transChange\b[^>]*>(.*?)</transChange>", re.DOTALL)
TAG = re.compile(r"<[^>]*>")
KJV_ARTEFACTS = {
    "USFM markers": re.compile(r"\\\+?[a-z]+\d*\*?\s?"),  # "\nd LORD" left over from the USFM source
    "pilcrows": re.compile("¶"),
    "brackets": re.compile(r"[\[\]]"),  # "[but]": a supplied word, printed in italics elsewhere
}


def space_added_words(raw: str, counts: Counter[str]) -> str:
    """Put spaces around ``<transChange>`` words that the RV1909 module glues to their neighbours."""
    out, last = [], 0
    for match in TRANS_CHANGE.finditer(raw):
        before = TAG.sub("", raw[: match.start()])
        after = TAG.sub("", raw[match.end() :])
        added = TAG.sub("", match.group(1)).strip()
        word_before = re.search(r"(\w+)$", before)
        space_before = space_after = ""
        if word_before and not (added in ENCLITICS and word_before.group(1).lower() not in NOT_VERBS):
            space_before = " "
        if after[:1].isalnum():
            space_after = " "
        if space_before or space_after:
            counts["es: glued added words spaced"] += 1
        out += [raw[last : match.start()], space_before, match.group(0), space_after]
        last = match.end()
    out.append(raw[last:])
    return "".join(out)


def case_lexicon(texts: Iterable[str]) -> dict[str, str]:
    """Map lower-cased words to their most frequent spelling inside sentences (``jehová`` → ``Jehová``).

    Only words after a word, comma or semicolon count, so sentence-initial capitals do not.
    """
    spellings: Counter[str] = Counter()
    for text in texts:
        spellings.update(w for w in re.findall(r"(?<=[\w,;] )\w+", text) if not (len(w) > 1 and w.isupper()))
    best: dict[str, tuple[int, str]] = {}
    for word, n in spellings.items():
        key = word.lower()
        best[key] = max(best.get(key, (0, "")), (n, word))
    # Capitals may drop a circumflex (ACHAB for Achâb): add unaccented keys that are not words themselves.
    bare: dict[str, tuple[int, str]] = {}
    for key, spelling in best.items():
        bare_key = strip_accents(key)
        if bare_key not in best:
            bare[bare_key] = max(bare.get(bare_key, (0, "")), spelling)
    return {key: word for key, (_, word) in (best | bare).items()}


def strip_accents(word: str) -> str:
    """``word`` without combining marks (``achâb`` → ``achab``)."""
    return "".join(ch for ch in unicodedata.normalize("NFD", word) if not unicodedata.combining(ch))


def find_drop_cap(text: str, any_sentence: bool) -> re.Match[str] | None:
    """The all-caps run printed as a drop cap at the start of ``text`` ("EN el", "Y ACONTECIÓ que").

    With ``any_sentence`` the run may also open a later sentence, e.g. after a Psalm superscription
    ("Salmo de David. JEHOVÁ es mi pastor").
    """
    for match in DROP_CAP.finditer(text):
        before = text[: match.start()].rstrip("¡¿(«\"' ")
        opens = not before or (any_sentence and before.endswith((".", ":", "?", "!")))
        if opens and CAPS_WORD.search(match.group(1)):
            return match
        if not any_sentence:
            break
    return None


def recase(run: str, lexicon: dict[str, str]) -> str:
    """Give each word of a drop-cap run its usual spelling, keeping the capital of the first letter.

    ``lexicon`` keeps names capitalised: "Y JOSÉ vino" → "Y José vino", "EN el" → "En el".
    """
    words = re.split(r"(\W+)", run)
    fixed = [lexicon.get(w.lower(), w.lower()) if w.isalpha() else w for w in words]
    return words[0][0] + "".join(fixed)[1:]


def inner_caps_words(text: str) -> set[str]:
    """All-caps words of ``text`` that come after some lower-case text (not part of an opening run)."""
    return {m.group() for m in CAPS_WORD.finditer(text) if re.search(f"[{LOWER}]", text[: m.start()])}


def read_bible(sword_dir: Path, module: str) -> dict[Verse, str]:
    """Raw OSIS text of every verse of a SWORD module, keyed by (book, chapter, verse), in canonical order."""
    from pysword.modules import SwordModules  # needed only for this corpus

    modules = SwordModules(str(sword_dir))
    found = modules.parse_modules()
    if module not in found:
        raise SystemExit(f"SWORD module {module} not found in {sword_dir} (found {sorted(found)})")
    bible = modules.get_bible_from_module(module)
    verses = {}
    for books in bible.get_structure().get_books().values():
        for book in books:
            for chapter, length in enumerate(book.chapter_lengths, 1):
                for verse in range(1, length + 1):
                    raw = bible.get(books=[book.osis_name], chapters=[chapter], verses=[verse], clean=False)
                    verses[(book.name, chapter, verse)] = raw
    return verses


def clean_spanish(verse: Verse, raw: str, cleaner: OsisCleaner, counts: Counter[str]) -> str:
    """Plain text of an RV1909 verse: tags removed, glued words spaced, Psalm 119 letter names dropped."""
    text = normalize_space(cleaner.clean(space_added_words(raw, counts)))
    if verse[:2] == ("Psalms", 119) and verse[2] % 8 == 1 and ACROSTIC.match(text):
        counts["es: Psalm 119 letter headings removed"] += 1
        text = ACROSTIC.sub("", text)
    return text


def clean_english(raw: str, cleaner: OsisCleaner, counts: Counter[str]) -> str:
    """Plain text of a KJV verse, keeping titles the Spanish text also has inline.

    RV1909 carries Psalm superscriptions and epistle subscriptions in the verse text, so the KJV
    ``<title>``s are kept too, except the Psalm 119 Hebrew-letter headings. Leftover USFM markers
    (``\\nd``), pilcrows and the brackets of supplied words are removed.
    """
    raw = re.sub(r"<title>\s*<foreign>.*?</foreign>\s*</title>", " ", raw, flags=re.DOTALL)
    text = cleaner.clean(re.sub(r"</?title\b[^>]*>", " ", raw))
    for label, pattern in KJV_ARTEFACTS.items():
        text, n = pattern.subn("", text)
        counts[f"en: {label} removed"] += n
    return normalize_space(text)


def fix_drop_caps(spanish: dict[Verse, str], counts: Counter[str]) -> None:
    """Re-case the drop caps of chapter openings in place ("EN el principio" → "En el principio").

    Verse 1 (and each Psalm 119 stanza) always counts as an opening. Elsewhere a leading all-caps
    run is re-cased only if none of its words is also written in capitals inside verses (JAH, TEKEL).
    """
    lexicon = case_lexicon(spanish.values())
    genuine = {w for (_, _, n), text in spanish.items() if n != 1 for w in inner_caps_words(text)}
    for (book, chapter, n), text in spanish.items():
        opening = n == 1 or (book == "Psalms" and chapter == 119 and n % 8 == 1)
        match = find_drop_cap(text, any_sentence=n == 1)
        if match and (opening or not genuine & set(CAPS_WORD.findall(match.group(1)))):
            counts["es: drop-cap openings re-cased"] += 1
            run = recase(match.group(1), lexicon)
            spanish[(book, chapter, n)] = text[: match.start()] + run + text[match.end() :]


def build_es_en(root: Path) -> list[Row]:
    """Spanish→English verse pairs (RV1909 ↔ KJV) with a ``Book chapter`` group column."""
    from pysword.cleaner import OSISCleaner  # needed only for this corpus

    cleaner = OSISCleaner()
    sword_dir = root / "usr/share/sword"
    counts = step_counter(
        "es: verses in versification",
        "en: verses in versification",
        "es: glued added words spaced",
        "es: Psalm 119 letter headings removed",
        "es: drop-cap openings re-cased",
        *(f"en: {label} removed" for label in KJV_ARTEFACTS),
        "dropped: verse empty on one side",
        "dropped: leftover markup",
    )
    spanish_raw = read_bible(sword_dir, SPANISH_MODULE)
    english_raw = read_bible(sword_dir, ENGLISH_MODULE)
    counts["es: verses in versification"] = len(spanish_raw)
    counts["en: verses in versification"] = len(english_raw)
    spanish = {verse: clean_spanish(verse, raw, cleaner, counts) for verse, raw in spanish_raw.items()}
    english = {verse: clean_english(raw, cleaner, counts) for verse, raw in english_raw.items()}
    fix_drop_caps(spanish, counts)

    rows: list[Row] = []
    for (book, chapter, n), source in spanish.items():
        target = english.get((book, chapter, n), "")
        if not source or not target:
            counts["dropped: verse empty on one side"] += 1
        elif TAG.search(source) or TAG.search(target):
            counts["dropped: leftover markup"] += 1
        else:
            rows.append((source, target, f"{book} {chapter}"))
    counts["pairs written"] = len(rows)
    report("es-en", counts)
    return rows


# --------------------------------------------------------------------------- de-en: LibreOffice help

PARAGRAPH_TAGS = {"p", "h1", "h2", "h3", "h4", "h5", "h6", "td", "li"}
VOID_TAGS = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}
# Placeholders left unexpanded, entities left escaped, and Python prompts of code examples.
HELP_LEFTOVER = re.compile(r"\$\[\w+\]|%PRODUCTNAME|&(?:[a-zA-Z]+|#\d+);|>>>")
MAX_WORDS = 100


class HelpParagraphs(HTMLParser):
    """Collect the text of every paragraph-like element that has an ``id``, in document order.

    Hidden variants of a "switch" (e.g. the macOS menu path next to the default one) are skipped
    inside a paragraph, except the ``default…`` variant, so "Choose Tools - Options" is kept once.
    Code paragraphs (class ``*code*``) and anything inside ``<pre>`` are skipped.
    """

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.paragraphs: list[tuple[str, str]] = []
        self._open: list[tuple[str, str, list[str], int]] = []  # (tag, id, text parts, nesting)
        self._hidden_depth = 0  # >0 while inside a hidden, non-default switch variant
        self._pre_depth = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in VOID_TAGS:
            if tag == "br":
                self.handle_data(" ")
            return
        attr = {k: v or "" for k, v in attrs}
        if tag == "pre":
            self._pre_depth += 1
        if self._hidden_depth:
            self._hidden_depth += 1
        elif self._open and "hidden" in attr and not attr.get("id", "").startswith("default"):
            self._hidden_depth = 1
        if tag in PARAGRAPH_TAGS and attr.get("id") and not self._pre_depth and "code" not in attr.get("class", ""):
            self._open.append((tag, attr["id"], [], 0))
        elif self._open and tag == self._open[-1][0]:
            top_tag, top_id, parts, depth = self._open[-1]
            self._open[-1] = (top_tag, top_id, parts, depth + 1)

    def handle_endtag(self, tag: str) -> None:
        if tag in VOID_TAGS:
            return
        if tag == "pre" and self._pre_depth:
            self._pre_depth -= 1
        if self._hidden_depth:
            self._hidden_depth -= 1
        if self._open and self._open[-1][0] == tag:
            top_tag, top_id, parts, depth = self._open[-1]
            if depth:
                self._open[-1] = (top_tag, top_id, parts, depth - 1)
            else:
                self._open.pop()
                text = "".join(parts)
                if self._open:
                    self._open[-1][2].append(text)  # a nested paragraph is part of its parent too
                self.paragraphs.append((top_id, text))

    def handle_data(self, data: str) -> None:
        if self._open and not self._hidden_depth:
            self._open[-1][2].append(data)


def help_paragraphs(path: Path) -> dict[str, str]:
    """Paragraph texts of one help page keyed by element id (the first one wins for repeated ids)."""
    parser = HelpParagraphs()
    parser.feed(path.read_text(encoding="utf-8"))
    parser.close()
    texts: dict[str, str] = {}
    for element_id, text in parser.paragraphs:
        texts.setdefault(element_id, normalize_space(html.unescape(text)))
    return texts


def build_de_en(root: Path) -> list[Row]:
    """German→English pairs from LibreOffice help pages, joined on (file, element id)."""
    help_root = root / "usr/share/libreoffice/help"
    en_files = sorted((help_root / "en-US" / "text").rglob("*.html"))
    if not en_files:
        raise SystemExit(f"no help pages under {help_root / 'en-US' / 'text'}")
    counts = step_counter(
        "en-US pages",
        "en-US pages without a de page",
        "en-US paragraphs with an id",
        "dropped: id missing in de",
        "joined on (file, id)",
        "dropped: empty side",
        "dropped: leftover markup, placeholder or code",
        f"dropped: over {MAX_WORDS} words",
        "dropped: untranslated (same text)",
        "dropped: duplicate pair",
    )
    counts["en-US pages"] = len(en_files)
    seen: set[Row] = set()
    rows: list[Row] = []
    for en_file in en_files:
        relative = en_file.relative_to(help_root / "en-US")
        de_file = help_root / "de" / relative
        if not de_file.is_file():
            counts["en-US pages without a de page"] += 1
            continue
        english, german = help_paragraphs(en_file), help_paragraphs(de_file)
        counts["en-US paragraphs with an id"] += len(english)
        for element_id, target in english.items():
            source = german.get(element_id)
            if source is None:
                counts["dropped: id missing in de"] += 1
                continue
            counts["joined on (file, id)"] += 1
            if not source or not target:
                counts["dropped: empty side"] += 1
            elif any(MARKUP.search(t) or HELP_LEFTOVER.search(t) for t in (source, target)):
                counts["dropped: leftover markup, placeholder or code"] += 1
            elif len(source.split()) > MAX_WORDS or len(target.split()) > MAX_WORDS:
                counts[f"dropped: over {MAX_WORDS} words"] += 1
            elif same_text(source, target):
                counts["dropped: untranslated (same text)"] += 1
            elif (source, target) in seen:
                counts["dropped: duplicate pair"] += 1
            else:
                seen.add((source, target))
                rows.append((source, target))
    counts["pairs written"] = len(rows)
    report("de-en", counts)
    return rows


# --------------------------------------------------------------------------- main

BUILDERS: dict[str, Callable[[Path], list[Row]]] = {"lt-en": build_lt_en, "es-en": build_es_en, "de-en": build_de_en}


def main(argv: list[str] | None = None) -> None:
    """Parse arguments, then fetch, build and write each requested corpus."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--work", type=Path, help="scratch dir for .debs and unpacked trees (default: a temporary one)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output directory (default: %(default)s)")
    parser.add_argument("--only", nargs="+", choices=sorted(BUILDERS), help="build only these corpora")
    args = parser.parse_args(argv)
    names = args.only or list(BUILDERS)
    with tempfile.TemporaryDirectory(prefix="gradtune-corpora-") as tmp:
        work = args.work or Path(tmp)
        for name in names:
            print(f"== {name}: packages")
            root = fetch_and_extract(PACKAGES[name], work / name)
            rows = BUILDERS[name](root)
            path = args.out / f"{name}.tsv.gz"
            written = write_tsv_gz(path, rows)
            print(f"wrote {written} pairs to {path} ({path.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
