import gzip

import numpy as np
import pytest

from gradtune.data.batching import encode_pairs, epoch_order, pack, prefetch
from gradtune.data.corpora import EMBEDDED, Example, load_corpus, load_embedded, read_tsv
from gradtune.data.splits import split_examples
from gradtune.data.tokenizer import BOS_ID, EOS_ID, PAD_ID, train_tokenizer
from gradtune.errors import DataError


def _examples(n, groups=None):
    return [
        Example(f"source {i} text", f"target {i} words", f"g{i % groups}" if groups else f"source {i} text")
        for i in range(n)
    ]


def test_tsv_reader_reads_plain_and_gzip_and_a_group_column(tmp_path):
    (tmp_path / "a.tsv").write_text("hola\thello\nadiós\tbye\tchapter 1\n", encoding="utf-8")
    with gzip.open(tmp_path / "a.tsv.gz", "wt", encoding="utf-8") as f:
        f.write("hola\thello\n")
    plain = read_tsv(tmp_path / "a.tsv")
    assert plain == [Example("hola", "hello", "hola"), Example("adiós", "bye", "chapter 1")]
    assert read_tsv(tmp_path / "a.tsv.gz") == [Example("hola", "hello", "hola")]


@pytest.mark.parametrize(
    ("text", "message"),
    [("one\ttwo\nonly-one-field\n", r"a\.tsv:2: expected"), ("", "empty"), ("a\tb\tc\td\n", r"a\.tsv:1: .*4 tab")],
)
def test_bad_tsv_is_one_clear_error_naming_file_and_line(tmp_path, text, message):
    (tmp_path / "a.tsv").write_text(text, encoding="utf-8")
    with pytest.raises(DataError, match=message):
        read_tsv(tmp_path / "a.tsv")


def test_missing_corpus_and_unknown_name_are_clear_errors(tmp_path):
    with pytest.raises(DataError, match="no such corpus file"):
        load_corpus(str(tmp_path / "nope.tsv"))
    with pytest.raises(DataError, match="unknown embedded corpus"):
        load_embedded("xx-yy")


def test_non_utf8_file_is_a_clear_error(tmp_path):
    (tmp_path / "a.tsv").write_bytes(b"caf\xe9\tcoffee\n")
    with pytest.raises(DataError, match="not UTF-8"):
        read_tsv(tmp_path / "a.tsv")


@pytest.mark.parametrize("name", sorted(EMBEDDED))
def test_embedded_corpora_hold_real_parallel_text(name):
    examples = load_embedded(name)
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
    assert 0.01 * len(splits["train"]) <= len(splits["guide"]) <= 0.0102 * len(splits["train"]) + 1


def test_a_corpus_too_small_for_a_guide_split_is_refused():
    with pytest.raises(DataError, match="too few"):
        split_examples(_examples(600))


@pytest.fixture(scope="module")
def tokenizer():
    rng = np.random.default_rng(0)
    words = ["alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta", "theta"]
    return train_tokenizer((" ".join(rng.choice(words, 6)) for _ in range(2000)), vocab_size=60)


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


def test_prefetch_yields_in_order_and_reraises_producer_errors():
    assert list(prefetch(iter(range(10)), size=2)) == list(range(10))

    def broken():
        yield 1
        raise RuntimeError("boom")

    stream = prefetch(broken())
    assert next(stream) == 1
    with pytest.raises(RuntimeError, match="boom"):
        next(stream)
