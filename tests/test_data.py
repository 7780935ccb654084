import gzip
import lzma

import numpy as np
import pytest

from gradtune.data.batching import encode_pairs, epoch_order, pack
from gradtune.data.cleaning import Filters, clean
from gradtune.data.corpora import EMBEDDED, Example, load_embedded, read_text_pair, read_tsv
from gradtune.data.prepare import prepare_splits
from gradtune.data.splits import split_examples
from gradtune.data.tokenizer import BOS_ID, EOS_ID, PAD_ID, train_tokenizer
from gradtune.errors import DataError


def _examples(n, groups=None):
    return [
        Example(f"source {i} text", f"target {i} words", f"g{i % groups}" if groups else f"source {i} text")
        for i in range(n)
    ]


def test_tsv_reader_reads_plain_gzip_and_xz_and_a_group_column(tmp_path):
    (tmp_path / "a.tsv").write_text("hola\thello\nadiós\tbye\tchapter 1\n", encoding="utf-8")
    with gzip.open(tmp_path / "a.tsv.gz", "wt", encoding="utf-8") as f:
        f.write("hola\thello\n")
    with lzma.open(tmp_path / "a.tsv.xz", "wt", encoding="utf-8") as f:
        f.write("hola\thello\r\n")
    plain = read_tsv(tmp_path / "a.tsv").examples
    assert plain == [Example("hola", "hello", "hola"), Example("adiós", "bye", "chapter 1")]
    assert read_tsv(tmp_path / "a.tsv.gz").examples == [Example("hola", "hello", "hola")]
    assert read_tsv(tmp_path / "a.tsv.xz", corpus=2).examples == [Example("hola", "hello", "hola", 2)]


def test_two_file_corpus_reads_aligned_lines_compressed_or_not(tmp_path):
    (tmp_path / "a.lt").write_text("labas\načiū\n", encoding="utf-8")
    with lzma.open(tmp_path / "a.en.xz", "wt", encoding="utf-8") as f:
        f.write("hello\nthanks\n")
    corpus = read_text_pair(tmp_path / "a.lt", tmp_path / "a.en.xz", corpus=1)
    assert corpus.examples == [Example("labas", "hello", "labas", 1), Example("ačiū", "thanks", "ačiū", 1)]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("one\ttwo\nonly-one-field\n", r"a\.tsv:2: expected 'source<TAB>target'.*found 1 .*fix that line"),
        ("", r"a\.tsv: the corpus is empty"),
        ("a\tb\tc\td\n", r"a\.tsv:1: .*found 4 tab-separated"),
    ],
)
def test_bad_tsv_is_one_clear_error_naming_file_and_line(tmp_path, text, message):
    (tmp_path / "a.tsv").write_text(text, encoding="utf-8")
    with pytest.raises(DataError, match=message):
        read_tsv(tmp_path / "a.tsv")


def test_two_file_corpus_with_mismatched_or_empty_files_is_refused(tmp_path):
    (tmp_path / "a.lt").write_text("labas\načiū\nsveiki\n", encoding="utf-8")
    (tmp_path / "a.en").write_text("hello\nthanks\n", encoding="utf-8")
    (tmp_path / "empty.lt").write_text("")
    (tmp_path / "empty.en").write_text("")
    with pytest.raises(DataError, match=r"a\.lt\+.*a\.en: 3 source lines but 2 target lines; .*line-aligned"):
        read_text_pair(tmp_path / "a.lt", tmp_path / "a.en")
    with pytest.raises(DataError, match=r"empty\.lt\+.*empty\.en: the corpus is empty"):
        read_text_pair(tmp_path / "empty.lt", tmp_path / "empty.en")


def test_missing_corpus_and_unknown_name_are_clear_errors(tmp_path):
    with pytest.raises(DataError, match=r"nope\.tsv: no such corpus file; give an embedded name"):
        read_tsv(tmp_path / "nope.tsv")
    with pytest.raises(DataError, match="unknown embedded corpus 'xx-yy'; choose one of lt-en"):
        load_embedded("xx-yy")


def test_lines_that_are_not_utf8_are_skipped_and_counted_or_refused_when_strict(tmp_path):
    (tmp_path / "a.tsv").write_bytes(b"caf\xe9\tcoffee\nte\ttea\n")
    corpus = read_tsv(tmp_path / "a.tsv")
    assert corpus.examples == [Example("te", "tea", "te")] and corpus.invalid_utf8 == 1
    with pytest.raises(DataError, match=r"a\.tsv:1: not UTF-8 .*convert the file to UTF-8, or leave out --strict"):
        read_tsv(tmp_path / "a.tsv", strict=True)
    (tmp_path / "b.lt").write_bytes(b"ok\nbad \xff\n")
    (tmp_path / "b.en").write_bytes(b"ok en\nbad en\n")
    pair = read_text_pair(tmp_path / "b.lt", tmp_path / "b.en")
    assert [e.source for e in pair.examples] == ["ok"] and pair.invalid_utf8 == 1
    (tmp_path / "latin1.tsv").write_bytes(b"caf\xe9\tcoffee\n")
    with pytest.raises(DataError, match=r"latin1\.tsv: not UTF-8 text .*convert it to UTF-8"):
        read_tsv(tmp_path / "latin1.tsv")


@pytest.mark.parametrize("name", sorted(EMBEDDED))
def test_embedded_corpora_hold_real_parallel_text(name):
    examples = load_embedded(name).examples
    assert len(examples) > 10_000
    assert all(e.source and e.target for e in examples)
    assert sum(e.source == e.target for e in examples) < 0.01 * len(examples)


def test_splits_are_disjoint_deterministic_and_keep_groups_together():
    examples = _examples(20_000, groups=3000)
    a = split_examples(examples)
    b = split_examples(list(reversed(examples)))
    assert sum(len(s) for s in a.values()) == len(examples)
    groups = {name: {e.group for e in split} for name, split in a.items()}
    names = list(groups)
    for i, x in enumerate(names):
        for y in names[i + 1 :]:
            assert not groups[x] & groups[y], (x, y)
        assert groups[x] == {e.group for e in b[x]}  # order of the corpus does not matter
    assert len(a["guide"]) >= 500
    assert 0.03 < len(a["dev"]) / len(examples) < 0.07


def test_guide_split_is_one_percent_of_training_when_that_exceeds_500():
    splits = split_examples(_examples(100_000))
    pool = len(splits["train"]) + len(splits["guide"])
    assert 0.009 * pool < len(splits["guide"]) < 0.011 * pool  # groups with a guide hash below 0.01


def test_a_corpus_too_small_for_a_guide_split_is_refused():
    with pytest.raises(DataError, match=r"only .* training pairs: too few .* lower data\.min_guide"):
        split_examples(_examples(600))


@pytest.mark.parametrize("n_old", [3_000, 80_000])  # under and over the 500-pair guide floor
def test_splits_stay_put_when_the_corpus_grows(n_old):
    """New pairs never move old ones in or out of dev/test, nor from train into guide."""
    old_examples = _examples(n_old, groups=n_old // 3)
    grown = [*old_examples, *(Example(f"new {i}", f"neu {i}", f"new group {i % 5000}") for i in range(20_000))]
    before = split_examples(old_examples)
    after = split_examples(grown)
    where = {name: {(e.source, e.group) for e in split} for name, split in after.items()}
    for name in ("dev", "test"):
        assert {(e.source, e.group) for e in before[name]} <= where[name]
    assert {(e.source, e.group) for e in before["train"]} <= where["train"]
    if n_old * 0.9 * 0.01 > 500:  # past the floor the guide split is a function of the group alone
        assert {(e.source, e.group) for e in before["guide"]} <= where["guide"]


def test_a_user_guide_corpus_is_the_guide_split_and_its_groups_leave_the_others():
    examples = _examples(5_000)
    guide = [Example("source 7 text", "another target", "source 7 text"), Example("held out", "x", "held out")]
    splits = split_examples(examples, guide=guide)
    assert splits["guide"] == guide
    others = [e for name in ("train", "dev", "test") for e in splits[name]]
    assert len(others) == len(examples) - 1 and all(e.source != "source 7 text" for e in others)


def test_each_cleaning_filter_removes_its_pairs_and_counts_them():
    examples = [
        Example(s, t, s)
        for s, t in [
            ("guten Tag", "good day"),
            ("", "empty source"),
            ("leer", ""),
            ("eins", "one"),
            ("ein sehr langer Satz mit vielen Wörtern", "a very long sentence with many words"),
            ("kurz", "a much longer target"),
            ("Hallo Welt", "hallo  WELT"),
            ("guten Tag", "good day"),
        ]
    ]
    kept, removed = clean(examples, Filters(min_tokens=1, max_tokens=6, max_length_ratio=3.0))
    assert [e.source for e in kept] == ["guten Tag", "eins"]
    assert removed == {
        "empty side": 2,
        "too short": 0,
        "too long": 1,
        "length ratio": 1,
        "source = target": 1,
        "duplicate": 1,
    }
    _, removed = clean(examples[3:5], Filters(min_tokens=2))
    assert removed["too short"] == 1
    loose = Filters(max_tokens=0, max_length_ratio=0, drop_copies=False, drop_duplicates=False)
    assert len(clean(examples, loose)[0]) == 6  # only the empty sides go


def test_a_corpus_that_cleaning_empties_is_refused_naming_it(tmp_path):
    (tmp_path / "copies.tsv").write_text("".join(f"word {i}\tWord {i}\n" for i in range(50)), encoding="utf-8")
    with pytest.raises(DataError, match=r"copies\.tsv: cleaning removed all 50 pairs .*source = target 50"):
        prepare_splits(f"lt-en,{tmp_path / 'copies.tsv'}")


def test_prepare_reports_each_corpus_and_filter_and_keeps_corpus_indices(tmp_path):
    rows = "".join(f"šaltinis {i}\ttarget {i}\n" for i in range(2_000)) + "pats\tpats\nšaltinis 0\ttarget 0\n"
    (tmp_path / "mine.tsv").write_text(rows, encoding="utf-8")
    prepared = prepare_splits(f"es-en,mine={tmp_path / 'mine.tsv'}")
    assert prepared.corpora == ["es-en", "mine"]
    corpora = prepared.report["corpora"]
    assert corpora[1] == {"name": "mine", "pairs": 2002, "invalid_utf8_skipped": 0, "kept": 2000}
    assert prepared.report["removed"]["source = target"] >= 1 and prepared.report["removed"]["duplicate"] >= 1
    train = prepared.splits["train"]
    assert {e.corpus for e in train} == {0, 1}
    assert all(e.source.startswith("šaltinis") for e in train if e.corpus == 1)
    assert sum(prepared.report["splits"].values()) == corpora[0]["kept"] + corpora[1]["kept"]


@pytest.fixture(scope="module")
def tokenizer():
    rng = np.random.default_rng(0)
    words = ["alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta", "theta"]
    return train_tokenizer((" ".join(rng.choice(words, 6)) for _ in range(2000)), vocab_size=28)


def test_tokenizer_reserves_pad_zero_and_special_ids(tokenizer):
    assert tokenizer.pad_id() == PAD_ID == 0
    assert (tokenizer.bos_id(), tokenizer.eos_id()) == (BOS_ID, EOS_ID)
    assert PAD_ID not in tokenizer.encode("alpha beta gamma")


def test_packing_keeps_every_example_once_with_segments_and_positions(tokenizer):
    pairs = [(" ".join(["alpha"] * (i % 7 + 1)), " ".join(["beta gamma"] * (i % 5 + 1))) for i in range(300)]
    encoded = encode_pairs(tokenizer, pairs, row_len=16)
    batches = list(pack(encoded, epoch_order(len(encoded), 0, 0), rows=4, row_len=16))
    assert all(b["src"].shape == (4, 16) for b in batches)
    found = []
    for b in batches:
        for r in range(4):
            for seg in range(1, b["src_seg"][r].max() + 1):
                s, t = b["src_seg"][r] == seg, b["tgt_seg"][r] == seg
                src, tgt_out, tgt_in = b["src"][r][s], b["tgt_out"][r][t], b["tgt_in"][r][t]
                assert list(b["src_pos"][r][s]) == list(range(len(src)))
                assert list(b["tgt_pos"][r][t]) == list(range(len(tgt_out)))
                assert tgt_in[0] == BOS_ID and list(tgt_in[1:]) == list(tgt_out[:-1])
                found.append((tuple(src), tuple(tgt_out)))
            pad = b["src_seg"][r] == 0
            assert (b["src"][r][pad] == 0).all() and (b["tgt_out"][r][b["tgt_seg"][r] == 0] == 0).all()
    assert sorted(found) == sorted((tuple(s), tuple(t)) for s, t in encoded)
    fill = sum((b["tgt_out"] != 0).sum() for b in batches) / (len(batches) * 4 * 16)
    assert fill > 0.6


def test_long_examples_are_cut_to_one_row_keeping_eos(tokenizer):
    ((src, tgt),) = encode_pairs(tokenizer, [("alpha " * 50, "beta " * 50)], row_len=8)
    assert len(src) == len(tgt) == 8 and src[-1] == tgt[-1] == EOS_ID


def test_a_vocabulary_larger_or_smaller_than_the_data_allows_is_one_line_naming_the_key():
    sentences = ["alpha beta gamma delta", "epsilon zeta eta theta"] * 100
    with pytest.raises(DataError, match=r"^data.vocab_size 8000 is larger than the training data allows \(\d+ pieces"):
        train_tokenizer(iter(sentences), vocab_size=8000)
    with pytest.raises(DataError, match=r"^data.vocab_size 10 is smaller than the \d+ distinct characters") as error:
        train_tokenizer(iter(sentences), vocab_size=10)
    assert "\n" not in str(error.value)
