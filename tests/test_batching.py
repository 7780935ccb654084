"""Batches: fixed rows and token-budget buckets, padding masked, a resumable order, the model's view."""

from itertools import islice

import jax
import numpy as np
import pytest
from flax import nnx

from gradtune.data.batching import (
    FIELDS,
    BatchStream,
    StreamState,
    batch_shapes,
    build_batch,
    epoch_order,
    example_lengths,
    pack,
    plan_batches,
    training_batches,
)
from gradtune.data.tokenizer import EOS_ID
from gradtune.errors import DataError
from gradtune.seq2seq.model import ModelConfig, Transformer
from gradtune.seq2seq.objectives import make_losses


def _encoded(n, max_len=64, seed=0):
    """Random token ids ending in EOS; lengths 1..max_len, mostly short like real sentences."""
    rng = np.random.default_rng(seed)
    lengths = np.minimum(rng.geometric(0.08, size=(n, 2)), max_len)
    return [
        (
            np.array([*rng.integers(4, 90, s - 1), EOS_ID], np.int32),
            np.array([*rng.integers(4, 90, t - 1), EOS_ID], np.int32),
        )
        for s, t in lengths
    ]


def _examples_in(batch):
    """(source, target) token tuples of every segment of a batch, checking positions and padding."""
    found = []
    for r in range(batch["src"].shape[0]):
        for seg in range(1, batch["src_seg"][r].max() + 1):
            s, t = batch["src_seg"][r] == seg, batch["tgt_seg"][r] == seg
            assert list(batch["src_pos"][r][s]) == list(range(s.sum()))
            assert list(batch["tgt_pos"][r][t]) == list(range(t.sum()))
            found.append((tuple(batch["src"][r][s]), tuple(batch["tgt_out"][r][t])))
        for side, fields in (("src_seg", FIELDS[:3]), ("tgt_seg", FIELDS[3:])):
            pad = batch[side][r] == 0
            assert all((batch[f][r][pad] == 0).all() for f in fields)  # pad id 0 everywhere
    return found


def test_fixed_rows_are_one_shape_and_a_token_budget_a_few_buckets():
    assert batch_shapes(64, 32) == [(32, 64)]
    assert batch_shapes(64, 32, batch_tokens=2048) == [(256, 8), (128, 16), (64, 32), (32, 64)]
    assert batch_shapes(100, 32, batch_tokens=1000) == [(125, 8), (62, 16), (31, 32), (15, 64), (10, 100)]
    with pytest.raises(DataError, match=r"data.batch_tokens \(32\) is below data.row_len \(64\)"):
        batch_shapes(64, 32, batch_tokens=32)
    with pytest.raises(DataError, match=r"data.batch_rows \(0\) at least 1"):
        batch_shapes(64, 0)


def test_token_budget_batches_bucket_by_length_and_keep_every_example_once():
    examples = _encoded(3000)
    shapes = batch_shapes(64, 32, batch_tokens=1024)
    found = []
    for k, placed in plan_batches(example_lengths(examples), epoch_order(len(examples), 1, 0), shapes):
        batch = build_batch(examples, placed, shapes[k])
        assert batch["src"].shape == shapes[k] and shapes[k][0] * shapes[k][1] <= 1024
        found += _examples_in(batch)
    assert sorted(found) == sorted((tuple(s), tuple(t)) for s, t in examples)


def test_examples_go_to_the_shortest_bucket_that_holds_their_longer_side():
    examples = _encoded(500)
    shapes = batch_shapes(64, 8, batch_tokens=512)
    lengths = example_lengths(examples)
    for k, placed in plan_batches(lengths, range(len(examples)), shapes):
        for index, *_ in placed:
            longest = lengths[index].max()
            assert longest <= shapes[k][1] and (k == 0 or longest > shapes[k - 1][1])


def test_resuming_from_a_state_gives_the_same_batches_as_going_on():
    examples = _encoded(400, max_len=32)
    shapes = batch_shapes(32, 8, batch_tokens=256)
    run = list(islice(training_batches(examples, shapes, seed=3), 60))
    epoch_ends = [i for i, (state, _) in enumerate(run) if state.position == 0]
    assert epoch_ends and run[epoch_ends[0]][0] == StreamState(1, 0)  # the state after an epoch's last batch
    for i in (0, 7, epoch_ends[0], epoch_ends[0] + 1):
        resumed = training_batches(examples, shapes, seed=3, start=run[i][0])
        for (_, expected), (_, got) in zip(run[i + 1 : i + 6], islice(resumed, 5), strict=True):
            assert all(np.array_equal(expected[f], got[f]) for f in FIELDS)


def test_batch_stream_prefetches_in_order_and_resumes_from_its_state():
    examples = _encoded(300, max_len=32)
    shapes = batch_shapes(32, 4)
    reference = [batch for _, batch in islice(training_batches(examples, shapes, seed=5), 12)]
    stream = BatchStream(examples, shapes, seed=5, prefetch=2)
    first = [next(stream) for _ in range(7)]
    state = stream.state()
    stream.close()
    resumed = BatchStream(examples, shapes, seed=5, start=state)
    rest = [next(resumed) for _ in range(5)]
    resumed.close()
    for expected, got in zip(reference, first + rest, strict=True):
        assert all(np.array_equal(expected[f], got[f]) for f in FIELDS)


def test_batch_stream_refuses_bad_input_and_reraises_producer_errors():
    with pytest.raises(DataError, match="no training examples"):
        BatchStream([], batch_shapes(32, 4), seed=0)
    with pytest.raises(DataError, match=r"an example of 40 tokens does not fit rows of 32; raise data\.row_len"):
        too_long = (np.ones(40, np.int32), np.ones(3, np.int32))
        BatchStream([*_encoded(10, max_len=32), too_long], batch_shapes(32, 4), seed=0)

    class Broken(list):
        def __getitem__(self, index):
            raise RuntimeError("boom")

    stream = BatchStream(Broken(_encoded(10, max_len=32)), batch_shapes(32, 4), seed=0)
    with pytest.raises(RuntimeError, match="boom"):
        next(stream)


def test_packed_examples_neither_see_each_other_nor_change_the_loss():
    """Two examples in one row give the logits and loss they give in rows of their own."""
    cfg = ModelConfig(vocab_size=90, d_model=32, num_heads=2, mlp_dim=64, encoder_layers=1, decoder_layers=1)
    graphdef, params = nnx.split(Transformer(cfg, nnx.Rngs(0)))
    train_loss, _, eval_counts = make_losses(graphdef)

    @jax.jit
    def outputs(batch):
        logits = nnx.merge(graphdef, params)(batch)
        smoothed_loss = train_loss(params, batch, None, {"label_smoothing": 0.1})[0]
        return logits, eval_counts(params, batch), smoothed_loss

    a = (np.array([5, 6, 7, EOS_ID], np.int32), np.array([12, 13, EOS_ID], np.int32))
    b = (np.array([20, 21, 22, 23, 24, EOS_ID], np.int32), np.array([8, 9, 10, 11, EOS_ID], np.int32))
    packed = next(pack([a, b], [0, 1], rows=2, row_len=16))
    assert packed["src_seg"][0].max() == 2  # both in the first row
    apart = build_batch([a, b], [(0, 0, 0, 0, 1), (1, 1, 0, 0, 1)], (2, 16))
    packed_logits, packed_counts, packed_loss = outputs(packed)
    apart_logits, apart_counts, apart_loss = outputs(apart)
    np.testing.assert_allclose(packed_logits[0, :3], apart_logits[0, :3], atol=1e-5)
    np.testing.assert_allclose(packed_logits[0, 3:8], apart_logits[1, :5], atol=1e-5)
    np.testing.assert_allclose(packed_counts, apart_counts, rtol=1e-5)  # loss sum, correct tokens, tokens
    np.testing.assert_allclose(packed_loss, apart_loss, rtol=1e-5)
