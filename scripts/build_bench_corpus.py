#!/usr/bin/env python3
"""Build a German→English benchmark corpus (about 138k pairs) from Debian packages.

LibreOffice help paragraphs (as the embedded de-en corpus) plus the German gettext catalogs
of 45 packages (LibreOffice UI, GNOME, KDE, Xfce, command-line programs and two games), cleaned as the
embedded corpora are and deduplicated across sources, written to ``data/bench-de-en.tsv.gz``
(``source<TAB>target``). ``data/`` is ignored by git: the catalogs carry mixed GPL/LGPL/MPL
licences, so build the corpus, never commit it.

Packages are fetched with ``apt-get download`` and unpacked with ``dpkg-deb -x``; nothing
is installed. Use the result as ``--set corpus=data/bench-de-en.tsv.gz``.

Usage::

    python scripts/build_bench_corpus.py [--work DIR] [--out FILE]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from build_embedded_corpora import (  # a sibling script, not a package
    CATALOG_STEPS,
    PACKAGES,
    Row,
    build_de_en,
    catalog_pairs,
    fetch_and_extract,
    read_mo,
    report,
    step_counter,
    write_tsv_gz,
)

# Packages whose German gettext catalogs (``…/de/LC_MESSAGES/*.mo``) hold UI text.
CATALOG_PACKAGES = [
    "libreoffice-l10n-de",
    "gimp-data",
    "inkscape",
    "vlc-l10n",
    "libgtk-3-common",
    "libgtk2.0-common",
    "evolution-common",
    "evolution-data-server-common",
    "gnome-control-center-data",
    "nautilus-data",
    "gedit-common",
    "gnucash-common",
    "rhythmbox-data",
    "gnumeric-common",
    "audacity-data",
    "filezilla-common",
    "pidgin-data",
    "geany-common",
    "darktable",
    "digikam-data",
    "claws-mail-i18n",
    "brasero-common",
    "util-linux-locales",
    "kstars-data",
    "kdenlive-data",
    "k3b-i18n",
    "git",
    "coreutils",
    "gnupg-l10n",
    "libc-l10n",
    "iso-codes",
    "xkb-data",
    "shotwell-common",
    "hexchat-common",
    "thunar-data",
    "gnome-software-common",
    "evince-common",
    "libglib2.0-data",
    "gnome-shell-common",
    "gnome-terminal-data",
    "meld",
    "synaptic",
    "totem-common",
    "freeciv-data",
    "warzone2100-data",
]
DEFAULT_OUT = Path(__file__).resolve().parent.parent / "data" / "bench-de-en.tsv.gz"


def german_catalogs(root: Path) -> list[Path]:
    """German ``.mo`` catalogs under ``root`` that decode as UTF-8, sorted by path."""
    found = []
    for mo in sorted(root.rglob("*.mo")):
        if mo.parent.name != "LC_MESSAGES" or mo.parent.parent.name not in ("de", "de_DE"):
            continue
        try:
            for _ in read_mo(mo):
                pass
        except UnicodeDecodeError:
            print(f"  skipped (not UTF-8): {mo.relative_to(root)}")
            continue
        found.append(mo)
    return found


def build(work: Path) -> list[Row]:
    """Help paragraphs first, then catalog messages not already present."""
    print("== de-en help: packages")
    help_rows = build_de_en(fetch_and_extract(PACKAGES["de-en"], work / "help"))
    print("== gettext catalogs: packages")
    root = fetch_and_extract(CATALOG_PACKAGES, work / "catalogs")
    counts = step_counter(*CATALOG_STEPS, "dropped: already in the help pairs")
    catalog_rows = catalog_pairs(german_catalogs(root), counts)
    seen = set(help_rows)
    rows = list(help_rows)
    for row in catalog_rows:
        if row in seen:
            counts["dropped: already in the help pairs"] += 1
        else:
            seen.add(row)
            rows.append(row)
    counts["catalog pairs added"] = len(rows) - len(help_rows)
    report("de-en catalogs", counts)
    return rows


def main(argv: list[str] | None = None) -> None:
    """Fetch, build and write the benchmark corpus."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--work", type=Path, help="scratch dir for .debs and unpacked trees (default: a temporary one)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output file (default: %(default)s)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="gradtune-bench-corpus-") as tmp:
        rows = build(args.work or Path(tmp))
    tmp_out = args.out.with_name(args.out.name + ".tmp")
    written = write_tsv_gz(tmp_out, rows)
    tmp_out.replace(args.out)
    print(f"wrote {written} pairs to {args.out} ({args.out.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
