"""Packed batches: same scored tokens and contexts as unpacked, fixed shapes, resume, multi-host slices."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rce_jax.data import (
    MODEL_INPUTS,
    TokenizedCorpus,
    pack_windows,
    plan_batches,
)


def scored_contexts(plan):
    """(doc, token index) -> (visible context, target) for every scored position of every batch,
    reconstructed from the batch arrays alone: the context is the inputs of the position's own
    segment up to and including it. Fails if any token is scored twice."""
    seen = {}
    for batch in plan.iter_batches():
        B, L = batch.input_ids.shape
        assert (B, L) == (plan.batch_size, plan.seq_len)
        for b in range(B):
            seg = batch.segment_ids[b]
            for t in np.flatnonzero(batch.score_mask[b]):
                assert seg[t] > 0
                lo = t
                while lo > 0 and seg[lo - 1] == seg[t]:
                    lo -= 1
                assert batch.positions[b, t] == t - lo
                key = (int(batch.doc_ids[b, t]), int(batch.target_index[b, t]))
                assert key not in seen, f"{key} scored twice"
                seen[key] = (tuple(batch.input_ids[b, lo:t + 1].tolist()), int(batch.target_ids[b, t]))
    return seen


def check_row_layout(plan):
    """Structural invariants: segments contiguous and numbered 1.. in a row, padding inert."""
    for batch in plan.iter_batches():
        pad = batch.segment_ids == 0
        assert not batch.score_mask[pad].any()
        assert (batch.input_ids[pad] == 0).all() and (batch.doc_ids[pad] == -1).all()
        for row in batch.segment_ids:
            ids = row[row > 0]
            changes = ids[np.r_[True, ids[1:] != ids[:-1]]] if ids.size else ids
            assert changes.tolist() == list(range(1, len(changes) + 1))
        # Positions restart at 0 exactly where a new segment starts.
        starts = (batch.segment_ids > 0) & (batch.positions == 0)
        new_seg = np.c_[batch.segment_ids[:, :1] > 0, batch.segment_ids[:, 1:] != batch.segment_ids[:, :-1]]
        assert (starts == (new_seg & (batch.segment_ids > 0))).all()


docs_strategy = st.lists(st.integers(0, 40), min_size=1, max_size=12).flatmap(
    lambda lengths: st.tuples(
        st.just(lengths),
        st.integers(1, 12),  # seq_len
        st.integers(1, 5),  # batch_size
        st.integers(0, 2**31 - 1),  # token seed
    )
)


@settings(max_examples=150, deadline=None)
@given(docs_strategy)
def test_packing_preserves_every_scored_token_and_its_context(case):
    """Packed (first_fit) and unpacked (none) plans score exactly the same (document, token) pairs,
    each once, every document token, with the same visible context and target for each."""
    lengths, seq_len, batch_size, seed = case
    if not any(lengths):
        lengths = lengths[:-1] + [1]
    rng = np.random.default_rng(seed)
    docs = [rng.integers(0, 50, size=n).tolist() for n in lengths]
    tc = TokenizedCorpus.from_token_lists(docs, prefix_token=50)
    unpacked = plan_batches(tc, seq_len=seq_len, batch_size=batch_size, packing="none")
    packed = plan_batches(tc, seq_len=seq_len, batch_size=batch_size, packing="first_fit")
    want_keys = {(d, j) for d, n in enumerate(lengths) for j in range(n)}
    a, b = scored_contexts(unpacked), scored_contexts(packed)
    assert set(a) == want_keys and a == b
    for (d, j), (_, target) in a.items():
        assert target == docs[d][j]
    assert packed.num_rows <= unpacked.num_rows == len(unpacked.windows)
    assert packed.num_scored_tokens == unpacked.num_scored_tokens == sum(lengths)
    check_row_layout(packed)
    check_row_layout(unpacked)


def test_first_fit_is_first_fit():
    """Each window goes to the lowest row with room at the time it is placed (brute force check)."""
    rng = np.random.default_rng(1)
    lengths = rng.integers(1, 9, size=200).tolist()
    tc = TokenizedCorpus.from_token_lists([[1] * n for n in lengths], prefix_token=0)
    plan = plan_batches(tc, seq_len=8, batch_size=4)
    free = []
    for w, n in enumerate(plan.windows.length.tolist()):
        r = next((i for i, f in enumerate(free) if f >= n), len(free))
        if r == len(free):
            free.append(8)
        assert (plan.window_row[w], plan.window_offset[w]) == (r, 8 - free[r])
        free[r] -= n
    assert plan.num_rows == len(free)
    row, offset, num_rows = pack_windows(plan.windows, "first_fit")
    np.testing.assert_array_equal(row, plan.window_row)


def test_batches_have_fixed_shapes_and_padded_tail():
    """Every batch is [B, L] with the documented dtypes; the last is topped up with empty rows."""
    tc = TokenizedCorpus.from_token_lists([[3] * 10, [4] * 3], prefix_token=1)
    plan = plan_batches(tc, seq_len=4, batch_size=4, packing="none")
    assert plan.num_rows == 4 and plan.num_batches == 1  # 3 windows + 1 short one
    plan = plan_batches(tc, seq_len=4, batch_size=3, packing="none")
    batches = list(plan.iter_batches())
    assert len(batches) == plan.num_batches == 2 and [b.index for b in batches] == [0, 1]
    last = batches[-1]
    assert last.segment_ids[1:].max() == 0 and not last.score_mask[1:].any()
    for b in batches:
        dtypes = {k: v.dtype for k, v in b.model_inputs().items()}
        assert dtypes == {"input_ids": np.int32, "target_ids": np.int32, "score_mask": np.bool_,
                          "segment_ids": np.int32, "positions": np.int32}
        assert list(b.model_inputs()) == list(MODEL_INPUTS)
    assert sum(b.num_scored for b in batches) == 13


def test_resume_from_a_batch_index():
    """iter_batches(start_batch=k) yields exactly batches k.. of the full iteration."""
    rng = np.random.default_rng(2)
    tc = TokenizedCorpus.from_token_lists([rng.integers(0, 9, n).tolist() for n in rng.integers(0, 30, 25)], 9)
    plan = plan_batches(tc, seq_len=8, batch_size=3)
    full = list(plan.iter_batches())
    for k in (0, 1, plan.num_batches - 1, plan.num_batches):
        resumed = list(plan.iter_batches(start_batch=k))
        assert len(resumed) == len(full) - k
        for x, y in zip(resumed, full[k:]):
            assert x.index == y.index
            for name in MODEL_INPUTS + ("doc_ids", "target_index"):
                np.testing.assert_array_equal(getattr(x, name), getattr(y, name))
    with pytest.raises(ValueError, match="start_batch"):
        next(plan.iter_batches(start_batch=plan.num_batches + 1))
    with pytest.raises(IndexError):
        plan.batch(-1)


def test_plans_are_deterministic():
    """Two plans of the same corpus give identical batches."""
    docs = [[i % 7] * (i % 13) for i in range(40)]
    p1 = plan_batches(TokenizedCorpus.from_token_lists(docs, 0), seq_len=6, batch_size=4)
    p2 = plan_batches(TokenizedCorpus.from_token_lists(docs, 0), seq_len=6, batch_size=4)
    for x, y in zip(p1.iter_batches(), p2.iter_batches(), strict=True):
        for name in MODEL_INPUTS:
            np.testing.assert_array_equal(getattr(x, name), getattr(y, name))


def test_bad_plan_arguments():
    """A bad batch size or packing mode is a clear ValueError."""
    tc = TokenizedCorpus.from_token_lists([[1]], prefix_token=0)
    with pytest.raises(ValueError, match="batch_size must be a positive int"):
        plan_batches(tc, seq_len=4, batch_size=0)
    with pytest.raises(ValueError, match="unknown packing mode 'best'"):
        plan_batches(tc, seq_len=4, batch_size=1, packing="best")
