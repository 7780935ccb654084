"""``gradtune prepare``: load, clean and split the sources, report each step, write the splits."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from gradtune.cli.common import add_command, add_config_arguments, load
from gradtune.data.corpora import Example

EPILOG = """\
sources (the same syntax as data.corpus): comma-separated [NAME=]LOCATION entries, where
LOCATION is
  lt-en | es-en | de-en        an embedded corpus
  wmt19:lt-en                  a WMT training set from the HuggingFace hub (pip install -e '.[hub]';
                               wmt14 … wmt19; downloaded once into the cache, then read offline)
  corpus.tsv[.gz|.xz]          source<TAB>target[<TAB>group] lines
  train.lt+train.en            two line-aligned text files, one sentence per line

examples:
  gradtune prepare de-en
  gradtune prepare web=crawl.tsv.gz,bible=es-en --out prepared/
  gradtune prepare europarl.de.xz+europarl.en.xz --guide my-guide.tsv --strict
  gradtune prepare wmt19:lt-en                     # on a machine with a network: fills the cache
  gradtune prepare --set max_tokens=100 --set max_length_ratio=3
"""


def register(commands: argparse._SubParsersAction) -> None:
    prepare = add_command(
        commands, "prepare", run, "load, clean and split corpora into train/guide/dev/test and report each step", EPILOG
    )
    prepare.add_argument("corpus", nargs="?", help="the sources (default: data.corpus of the config, lt-en)")
    prepare.add_argument("--guide", metavar="SOURCES", help="the guide split from these sources (data.guide_corpus)")
    prepare.add_argument("--strict", action="store_true", help="a line that is not UTF-8 is an error, not skipped")
    add_config_arguments(prepare, "a TOML or JSON config file (its data section is used)")
    prepare.add_argument("--out", help="write train/guide/dev/test.tsv and report.json into this folder")


def split_tsv(examples: list[Example]) -> str:
    """TSV lines of a split; the group column only where the group is not the source."""
    return "".join(
        f"{e.source}\t{e.target}\n" if e.group == e.source else f"{e.source}\t{e.target}\t{e.group}\n" for e in examples
    )


def write_all(out: Path, files: dict[str, str]) -> None:
    """Write every file into ``out``, each atomically."""
    from gradtune.files import write_text

    out.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        write_text(out / name, text)


def run(args: argparse.Namespace) -> int:
    """Prepare the sources of the config (the arguments override it); print the report; write ``--out``."""
    from gradtune.data.prepare import format_report
    from gradtune.train.inputs import load_splits

    overrides = []
    if args.corpus:
        overrides.append(f"data.corpus={args.corpus}")
    if args.guide:
        overrides.append(f"data.guide_corpus={args.guide}")
    if args.strict:
        overrides.append("data.strict=true")
    prepared = load_splits(load(args, overrides).data)
    print(format_report(prepared.report))
    if args.out:
        files = {f"{name}.tsv": split_tsv(examples) for name, examples in prepared.splits.items()}
        files["report.json"] = json.dumps(prepared.report, indent=2) + "\n"
        write_all(Path(args.out), files)
        print(f"wrote {', '.join(files)} to {args.out}")
    return 0
