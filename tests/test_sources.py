"""Where the data comes from: the source syntax, the hub loader (offline, on a local fixture), the CLI."""

import json
import re
import time

import pytest

from gradtune.cli.main import main
from gradtune.data import hub
from gradtune.data.corpora import Example
from gradtune.data.sources import Source, load_sources, parse_sources
from gradtune.errors import DataError


def test_every_kind_of_source_parses_from_one_syntax():
    assert parse_sources("lt-en, wmt19:lt-en ,web=crawl.tsv.gz,ep.de.xz+ep.en.xz") == [
        Source("lt-en", "embedded", ("lt-en",)),
        Source("wmt19:lt-en", "hub", ("wmt19", "lt-en")),
        Source("web", "tsv", ("crawl.tsv.gz",)),
        Source("ep.de.xz+ep.en.xz", "text pair", ("ep.de.xz", "ep.en.xz")),
    ]


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("a.tsv,a.tsv", r"corpus name\(s\) a\.tsv given twice .*name each entry NAME="),
        ("lt-en,,de-en", r"empty corpus entry ''; expected NAME=LOCATION"),
        ("my corpus=a.tsv", r"corpus name 'my corpus' in 'my corpus=a.tsv': use letters, digits"),
        ("a.lt+b.en+c.en", r"'a.lt\+b.en\+c.en': a two-file corpus is SOURCE_PATH\+TARGET_PATH"),
        ("wmt99:lt-en", r"unknown hub dataset 'wmt99' in wmt99:lt-en; choose one of wmt14, .*wmt19"),
        ("wmt19:xx-en", r"wmt19 has no pair 'xx-en'; its pairs \(either direction\): cs-en, de-en"),
    ],
)
def test_bad_source_specs_are_one_clear_error(spec, message):
    with pytest.raises(DataError, match=message):
        load_sources(spec)


def test_several_named_corpora_load_together_each_example_keeping_its_corpus(tmp_path):
    (tmp_path / "a.tsv").write_text("uno\tone\ndos\ttwo\n", encoding="utf-8")
    (tmp_path / "b.es").write_text("tres\n", encoding="utf-8")
    (tmp_path / "b.en").write_text("three\n", encoding="utf-8")
    corpora = load_sources(f"mine={tmp_path / 'a.tsv'},lt-en,pair={tmp_path / 'b.es'}+{tmp_path / 'b.en'}")
    assert [c.name for c in corpora] == ["mine", "lt-en", "pair"]
    assert corpora[0].examples == [Example("uno", "one", "uno", 0), Example("dos", "two", "dos", 0)]
    assert {e.corpus for e in corpora[1].examples} == {1} and len(corpora[1].examples) > 10_000
    assert corpora[2].examples == [Example("tres", "three", "tres", 2)]


# --------------------------------------------------------------------------- the hub, offline

HUB_README = """---
configs:
- config_name: lt-en
  data_files:
  - split: train
    path: lt-en/train-*
  - split: validation
    path: lt-en/validation-*
dataset_info:
- config_name: lt-en
  features:
  - name: translation
    dtype:
      translation:
        languages:
        - lt
        - en
---
# A local copy laid out like the hub's wmt/wmt19 repository
"""


@pytest.fixture
def hub_cache(tmp_path, monkeypatch):
    """An empty HuggingFace datasets cache, so that no real cache can answer."""
    datasets = pytest.importorskip("datasets")
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "hf-cache")
    return tmp_path


@pytest.fixture
def local_wmt19(hub_cache, monkeypatch):
    """wmt19 pointed at a local folder with the hub's layout: README configs + parquet shards."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    repo = hub_cache / "wmt19"
    (repo / "lt-en").mkdir(parents=True)
    (repo / "README.md").write_text(HUB_README)
    rows = [{"lt": f" labas {i} ", "en": f"hello {i}"} for i in range(40)]
    pq.write_table(pa.table({"translation": rows}), repo / "lt-en" / "train-00000-of-00001.parquet")
    pq.write_table(pa.table({"translation": rows[:3]}), repo / "lt-en" / "validation-00000-of-00001.parquet")
    monkeypatch.setitem(hub.HUB_DATASETS, "wmt19", (str(repo), hub.HUB_DATASETS["wmt19"][1]))
    return repo


def test_hub_corpora_load_through_datasets_in_either_direction(local_wmt19):
    forward, backward = load_sources("wmt19:lt-en,back=wmt19:en-lt")
    assert forward.name == "wmt19:lt-en" and len(forward.examples) == 40  # the train split only
    assert forward.examples[1] == Example("labas 1", "hello 1", "labas 1", 0)
    assert backward.examples[1] == Example("hello 1", "labas 1", "hello 1", 1)


def test_hub_corpus_not_cached_and_no_network_fails_at_once_saying_how_to_fix(hub_cache, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # never reach the network from a test, whatever the machine
    start = time.monotonic()
    with pytest.raises(DataError, match=r"wmt19:lt-en: not in the HuggingFace cache .* cannot be reached; .*gradtune"):
        load_sources("wmt19:lt-en")
    assert time.monotonic() - start < 5  # not the library's retry loop

    def unreachable(*args, **kwargs):
        raise OSError("no route to host")

    monkeypatch.delenv("HF_HUB_OFFLINE")
    monkeypatch.setattr(hub.socket, "create_connection", unreachable)
    with pytest.raises(DataError, match=r"wmt19:de-en: not in the HuggingFace cache"):
        load_sources("wmt19:de-en")


# --------------------------------------------------------------------------- gradtune prepare


def _corpus(path, n=3_000):
    path.write_text("".join(f"šaltinis {i}\ttarget {i}\n" for i in range(n)) + "kopija\tkopija\n", encoding="utf-8")
    return path


def test_prepare_reports_each_filter_and_writes_every_split(tmp_path, capsys):
    corpus, out = _corpus(tmp_path / "c.tsv"), tmp_path / "out"
    assert main(["prepare", f"mine={corpus}", "--out", str(out), "--set", "max_tokens=100"]) == 0
    printed = capsys.readouterr().out
    assert "mine: 3,001 pairs read, 3,000 kept" in printed and "source = target 1" in printed
    assert sorted(p.name for p in out.iterdir()) == ["dev.tsv", "guide.tsv", "report.json", "test.tsv", "train.tsv"]
    report = json.loads((out / "report.json").read_text())
    lines = {name: (out / f"{name}.tsv").read_text(encoding="utf-8").splitlines() for name in report["splits"]}
    assert {name: len(rows) for name, rows in lines.items()} == report["splits"]
    assert sum(report["splits"].values()) == 3_000 and len(lines["guide"]) == 500
    assert len({line for rows in lines.values() for line in rows}) == 3_000  # no pair in two splits


def test_prepare_takes_the_guide_split_from_a_user_file(tmp_path, capsys):
    corpus = _corpus(tmp_path / "c.tsv")
    (tmp_path / "g.tsv").write_text("šaltinis 5\tan other target\nnew\tnauja\n", encoding="utf-8")
    out = tmp_path / "out"
    assert main(["prepare", str(corpus), "--guide", str(tmp_path / "g.tsv"), "--out", str(out)]) == 0
    report = json.loads((out / "report.json").read_text())
    assert report["splits"]["guide"] == 2 and report["removed"]["in the guide corpus"] == 1
    assert "šaltinis 5\t" not in (out / "train.tsv").read_text(encoding="utf-8")


@pytest.mark.parametrize(
    ("files", "args", "message"),
    [
        ({"c.tsv": "a\tb\nno tab here\n"}, ["c.tsv"], r"c\.tsv:2: expected 'source<TAB>target'"),
        ({"c.tsv": "a\tb\tc\td\n"}, ["c.tsv"], r"c\.tsv:1: .*found 4 tab-separated"),
        ({"c.tsv": ""}, ["c.tsv"], r"c\.tsv: the corpus is empty"),
        ({"s.txt": "a\nb\n", "t.txt": "x\n"}, ["s.txt+t.txt"], r"s\.txt\+.*t\.txt: 2 source lines but 1 target"),
        ({"c.tsv": "caf\xe9\tcoffee\n"}, ["c.tsv", "--strict"], r"c\.tsv:1: not UTF-8"),
        ({"c.tsv": "same\tsame\n"}, ["c.tsv"], r"c\.tsv: cleaning removed all 1 pairs"),
        ({"c.tsv": "".join(f"s{i}\tt{i}\n" for i in range(100))}, ["c.tsv"], r"only \d+ training pairs: too few"),
        ({}, ["wmt19:xx-en"], r"wmt19 has no pair 'xx-en'"),
        (
            {"c.tsv": "a\tb\nc\td\n", "g.tsv": "x\ty\n"},
            ["c.tsv", "--guide", "g.tsv"],
            r"c\.tsv: the (dev|test|train) split is empty; use a bigger corpus",
        ),
    ],
)
def test_prepare_refuses_bad_input_with_one_line_and_writes_nothing(tmp_path, capsys, files, args, message):
    for name, text in files.items():
        (tmp_path / name).write_bytes(text.encode("latin-1" if "\xe9" in text else "utf-8"))
    out = tmp_path / "out"
    args = [str(tmp_path / a) if a in files else a for a in args]
    args = [f"{tmp_path / 's.txt'}+{tmp_path / 't.txt'}" if a == "s.txt+t.txt" else a for a in args]
    assert main(["prepare", *args, "--out", str(out)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("gradtune: error: ") and err.count("\n") == 1 and "Traceback" not in err
    assert re.search(message, err), err
    assert not out.exists()


def test_a_vocabulary_too_large_for_the_data_stops_training_with_one_line(tmp_path, capsys):
    run, corpus = tmp_path / "run", _corpus(tmp_path / "c.tsv")
    args = ["--run-dir", str(run), "--set", f"corpus={corpus}", "--set", "vocab_size=20000", "--quiet"]
    assert main(["train", "--steps", "1", *args]) == 1
    err = capsys.readouterr().err.splitlines()[-1]
    assert re.fullmatch(r"gradtune: error: data\.vocab_size 20000 is larger than the training data allows .*", err)
    assert not run.exists()  # nothing half-written
