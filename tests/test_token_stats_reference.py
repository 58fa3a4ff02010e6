"""The pure-JAX streaming token statistics (the reference every kernel must match)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from np_reference import fresh_rng, np_token_stats

import rce_jax
from rce_kernels import token_stats_naive, token_stats_xla
from tolerances import LOGP_F32_ABS, LOGP_F32_UNIT_LOGITS_ABS


@pytest.mark.parametrize(
    "T,V,chunk",
    [(64, 1000, 128), (64, 1000, 999), (64, 1000, 4096), (16, 50257, 4096), (33, 7, 3), (5, 1, 4)],
)
@pytest.mark.parametrize("dtype", [jnp.float32, jnp.bfloat16])
def test_streaming_pass_matches_numpy(T, V, chunk, dtype):
    """Chunks that divide V or not, V below the chunk, V = 1: ranks/ties exact, logp to 1e-5."""
    rng = fresh_rng()
    logits = jnp.asarray(np.round(rng.standard_normal((T, V)) * 8) / 4, dtype)  # ties
    targets = rng.integers(0, V, T)
    out = token_stats_xla(logits, targets, chunk=chunk)
    logp, rank, ties = np_token_stats(np.asarray(logits.astype(jnp.float32)), targets)
    np.testing.assert_array_equal(out.rank, rank)
    np.testing.assert_array_equal(out.ties, ties)
    np.testing.assert_allclose(out.logp, logp, rtol=0, atol=LOGP_F32_ABS)
    assert out.logp.dtype == jnp.float32 and out.rank.dtype == jnp.int32


def test_minus_inf_rows_and_targets():
    """-inf entries add no mass; a -inf target has logp -inf and a valid rank; an all -inf row
    (padding) is flagged invalid rather than producing a bogus number."""
    z = np.array([[0.0, -np.inf, 1.0, -np.inf],
                  [0.0, -np.inf, 1.0, -np.inf],
                  [-np.inf] * 4], np.float32)
    y = np.array([0, 1, 2])
    out = token_stats_xla(z, y, chunk=2)
    assert out.logp[0] == pytest.approx(-np.log1p(np.e), abs=LOGP_F32_UNIT_LOGITS_ABS)
    assert out.rank[0] == 1 and out.ties[0] == 0
    assert out.logp[1] == -np.inf and out.rank[1] == 2 and out.ties[1] == 1
    assert np.isnan(out.logp[2]) and out.rank[2] == -1 and out.ties[2] == -1


def test_invalid_rows_are_flagged_under_jit():
    """Under jit nothing can raise: NaN/+inf rows and out-of-range targets get rank = -1."""
    z = np.zeros((5, 6), np.float32)
    z[1, 3] = np.nan
    z[2, 0] = np.inf
    y = np.array([0, 0, 1, 6, -3])
    out = jax.jit(token_stats_xla)(z, y)
    np.testing.assert_array_equal(out.rank, [0, -1, -1, -1, -1])
    np.testing.assert_array_equal(out.ties, [5, -1, -1, -1, -1])
    assert np.isnan(np.asarray(out.logp)[1:]).all()


def test_vocab_limit_restricts_ranking_and_softmax():
    rng = fresh_rng()
    z = rng.standard_normal((40, 300)).astype(np.float32)
    y = rng.integers(0, 250, 40)
    out = token_stats_xla(z, y, vocab_limit=250, chunk=64)
    logp, rank, ties = np_token_stats(z[:, :250], y)
    np.testing.assert_array_equal(out.rank, rank)
    np.testing.assert_allclose(out.logp, logp, atol=LOGP_F32_ABS, rtol=0)
    flagged = token_stats_xla(z, np.full(40, 260), vocab_limit=250)
    assert (np.asarray(flagged.rank) == -1).all()
    with pytest.raises(ValueError, match="vocab_limit=301"):
        token_stats_xla(z, y, vocab_limit=301)


def test_naive_and_streaming_agree():
    rng = fresh_rng()
    z = jnp.asarray(rng.standard_normal((50, 3000)), jnp.bfloat16)
    y = rng.integers(0, 3000, 50)
    a, b = token_stats_xla(z, y, chunk=512), token_stats_naive(z, y)
    np.testing.assert_array_equal(a.rank, b.rank)
    np.testing.assert_array_equal(a.ties, b.ties)
    np.testing.assert_allclose(a.logp, b.logp, atol=LOGP_F32_ABS, rtol=0)


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.bfloat16])
def test_no_full_size_float32_copy(dtype):
    """The streaming pass's scratch memory stays far below one float32 copy of the logits.

    XLA's own buffer assignment is the measurement (compiled.memory_analysis()). For bf16 the
    CPU backend keeps one bf16-sized bit view (see reference.as_sliceable), which is still half
    a float32 copy; the naive version needs several float32 copies.
    """
    T, V = 256, 50257
    args = (jax.ShapeDtypeStruct((T, V), dtype), jax.ShapeDtypeStruct((T,), jnp.int32))
    f32_copy = T * V * 4
    streaming = token_stats_xla.lower(*args).compile().memory_analysis().temp_size_in_bytes
    naive = token_stats_naive.lower(*args).compile().memory_analysis().temp_size_in_bytes
    bound = 0.25 * f32_copy if dtype == jnp.float32 else 0.5 * f32_copy + 0.25 * f32_copy
    assert streaming < bound, (streaming, f32_copy)
    assert naive >= f32_copy


def test_public_token_stats_keeps_the_leading_shape():
    rng = fresh_rng()
    z = rng.standard_normal((2, 3, 11)).astype(np.float32)
    y = rng.integers(0, 11, (2, 3))
    out = rce_jax.token_stats(z, y)
    assert out.logp.shape == out.rank.shape == out.ties.shape == (2, 3)
    logp, rank, _ = np_token_stats(z.reshape(6, 11), y.reshape(6))
    np.testing.assert_array_equal(np.asarray(out.rank).reshape(6), rank)
    with pytest.raises(ValueError, match="unknown token-stats impl 'cuda'"):
        rce_jax.token_stats(z, y, impl="cuda")
