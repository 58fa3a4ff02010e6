"""Packed rows (several documents in one row, segment ids) give the same logits as the
documents run one per row; the default positions restart at every segment."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import pytest

from hf_tiny import random_ours
from rce_jax.models import compute_logits
from rce_jax.models.attention import attention_mask, segment_positions
from tolerances import REFERENCE_LOGITS_STD_MIN, SAME_MODEL_LOGITS_ABS

LENGTHS = (100, 37, 135)  # 272 tokens; two documents are longer than the sliding windows


@pytest.mark.parametrize("name", ["gpt2", "opt_post_ln_proj", "neox_parallel", "mistral_window",
                                  "qwen2_window", "llama3_gqa_untied"])
def test_packed_row_equals_separate_rows(name):
    """One row holding three documents (segment ids 0, 1, 2) gives, for every document,
    the logits of that document alone (right-padded row), to 1e-5, with default positions
    and with explicit restarted positions (OPT's learned table is still offset by 2)."""
    model, config = random_ours(name, seed=3)
    rng = np.random.default_rng(5)
    docs = [rng.integers(0, config.vocab_size, n).astype(np.int32) for n in LENGTHS]
    packed = np.concatenate(docs)[None]
    seg = np.concatenate([np.full(n, i, np.int32) for i, n in enumerate(LENGTHS)])[None]
    pos = np.concatenate([np.arange(n, dtype=np.int32) for n in LENGTHS])[None]
    width = max(LENGTHS)
    separate = np.zeros((len(docs), width), np.int32)
    for i, d in enumerate(docs):
        separate[i, :len(d)] = d
    ref = np.asarray(compute_logits(model, jnp.asarray(separate)))
    assert ref.std() > REFERENCE_LOGITS_STD_MIN
    for kwargs in ({"segment_ids_BxL": jnp.asarray(seg)},
                   {"segment_ids_BxL": jnp.asarray(seg), "positions_BxL": jnp.asarray(pos)}):
        out = np.asarray(compute_logits(model, jnp.asarray(packed), **kwargs))[0]
        start = 0
        for i, n in enumerate(LENGTHS):
            np.testing.assert_allclose(out[start:start + n], ref[i, :n], rtol=0, atol=SAME_MODEL_LOGITS_ABS)
            start += n


def test_segment_positions_and_mask():
    """segment_positions restarts at each boundary; the mask is causal, within-segment and
    within the window (query - key < window), checked against a float64 NumPy loop."""
    seg = np.array([[0, 0, 0, 1, 1, 2, 2, 2, 2], [5, 5, 5, 5, 5, 5, 7, 7, 7]], np.int32)
    np.testing.assert_array_equal(np.asarray(segment_positions(jnp.asarray(seg))),
                                  [[0, 1, 2, 0, 1, 0, 1, 2, 3], [0, 1, 2, 3, 4, 5, 0, 1, 2]])
    for window in (None, 2, 3):
        got = np.asarray(attention_mask(jnp.asarray(seg), window))
        want = np.zeros_like(got)
        for b in range(seg.shape[0]):
            for q in range(seg.shape[1]):
                for k in range(seg.shape[1]):
                    want[b, q, k] = (k <= q and seg[b, q] == seg[b, k]
                                     and (window is None or q - k < window))
        np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("impl", ["xla"])
def test_jax_nn_attention_matches_einsum(impl):
    """attention_impl="xla" (jax.nn.dot_product_attention, the path that "cudnn" selects on
    GPUs) gives the einsum implementation's logits to 1e-5, with GQA, a sliding window and
    packed segments."""
    from flax import nnx

    from rce_jax.models import abstract_model

    model, config = random_ours("mistral_window", seed=3)
    other = nnx.merge(nnx.split(abstract_model(config, attention_impl=impl))[0], nnx.state(model))
    rng = np.random.default_rng(6)
    ids = jnp.asarray(rng.integers(0, config.vocab_size, (2, 160)).astype(np.int32))
    seg = jnp.asarray(np.repeat([[0] * 70 + [1] * 90], 2, axis=0).astype(np.int32))
    want = np.asarray(compute_logits(model, ids, segment_ids_BxL=seg))
    got = np.asarray(compute_logits(other, ids, segment_ids_BxL=seg))
    np.testing.assert_allclose(got, want, rtol=0, atol=SAME_MODEL_LOGITS_ABS)
