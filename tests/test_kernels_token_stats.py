"""The Pallas token-statistics kernels (run in interpret mode on CPU) against the streaming XLA
implementation and an independent float64 NumPy computation."""

import functools

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import rce_jax
import rce_kernels
from rce_kernels.token_stats_gpu import UnsupportedShapeError, token_stats_mgpu
from rce_kernels.token_stats_tpu import token_stats_tpu
from np_reference import fresh_rng
from tolerances import LOGP_F32_ABS


def numpy_stats(logits, targets, vocab_limit=None):
    """float64 NumPy: logp = z_y - logsumexp(z), rank = #{z > z_y}, ties = #{z == z_y} - 1, over
    the first vocab_limit columns; invalid rows flagged as in reference.py."""
    z = np.asarray(jnp.asarray(logits).astype(jnp.float32), np.float64)
    limit = z.shape[1] if vocab_limit is None else vocab_limit
    z = z[:, :limit]
    t = np.asarray(targets)
    logp = np.full(len(t), np.nan)
    rank = np.full(len(t), -1)
    ties = np.full(len(t), -1)
    for i, (row, y) in enumerate(zip(z, t)):
        if not 0 <= y < limit or np.isnan(row).any() or np.isposinf(row).any():
            continue
        m = row.max()
        lse = m + np.log(np.exp(row - m).sum()) if np.isfinite(m) else m
        logp[i] = row[y] - lse
        rank[i] = int((row > row[y]).sum())
        ties[i] = int((row == row[y]).sum()) - 1
    return logp, rank, ties


def random_logits(seed, T, V, dtype, *, scale=3.0, round_to=None, neg_inf=0.0):
    key = jax.random.key(seed)
    k1, k2, k3 = jax.random.split(key, 3)
    z = jax.random.normal(k1, (T, V), jnp.float32) * scale
    if round_to is not None:  # coarse values: many exact ties
        z = jnp.round(z * round_to) / round_to
    if neg_inf:
        z = jnp.where(jax.random.bernoulli(k2, neg_inf, (T, V)), -jnp.inf, z)
    targets = jax.random.randint(k3, (T,), 0, V)
    return z.astype(dtype), targets


def assert_stats_equal(out, logp, rank, ties, atol):
    np.testing.assert_array_equal(np.asarray(out.rank), rank)
    np.testing.assert_array_equal(np.asarray(out.ties), ties)
    np.testing.assert_allclose(np.asarray(out.logp, np.float64), logp, rtol=0, atol=atol)


CASES = [
    # (T, V, dtype, vocab_limit, round_to, neg_inf)
    (24, 1000, jnp.float32, None, None, 0.0),
    (40, 1000, jnp.bfloat16, None, None, 0.0),  # bf16 logits tie often
    (16, 1000, jnp.float32, 777, 2.0, 0.05),  # rounded logits, -inf entries, vocab_limit
    (16, 50257, jnp.float32, None, None, 0.0),  # 201028-byte rows: 4-row groups
    (16, 50257, jnp.bfloat16, 50000, 4.0, 0.0),  # odd bf16 rows: 8-row groups
]


@pytest.mark.parametrize("T,V,dtype,limit,round_to,neg_inf", CASES)
def test_gpu_kernel_interpret_matches_xla_and_float64(T, V, dtype, limit, round_to, neg_inf):
    """The Mosaic GPU kernel, run in interpret mode through rce_jax.token_stats, gives exactly the
    XLA path's and float64 NumPy's ranks and ties, and logp within 1e-5, on fresh random logits
    (with ties, -inf entries and a vocab_limit where the case says so)."""
    logits, targets = random_logits(T * 7 + V, T, V, dtype, round_to=round_to, neg_inf=neg_inf)
    limit_ = V if limit is None else limit
    targets = targets % limit_
    out = rce_jax.token_stats(logits, targets, impl="pallas_interpret", vocab_limit=limit)
    ref = rce_jax.token_stats(logits, targets, impl="xla", vocab_limit=limit)
    np.testing.assert_array_equal(np.asarray(out.rank), np.asarray(ref.rank))
    np.testing.assert_array_equal(np.asarray(out.ties), np.asarray(ref.ties))
    assert_stats_equal(out, *numpy_stats(logits, targets, limit), atol=LOGP_F32_ABS)


def test_gpu_kernel_wide_vocabulary_few_rows():
    """A 151936-wide vocabulary (Qwen) with a few bf16 rows: exact ranks/ties, logp to 1e-5."""
    logits, targets = random_logits(5, 8, 151936, jnp.bfloat16)
    out = token_stats_mgpu(logits, targets, interpret=True, block_rows=8, block_cols=256)
    assert_stats_equal(out, *numpy_stats(logits, targets), atol=LOGP_F32_ABS)


def test_gpu_kernel_blocks_that_do_not_divide_the_shape():
    """Device-shaped blocks (64 rows, 136 columns) on T = 100 and V = 1000, neither a multiple:
    the clamped last row block and tile change nothing."""
    logits, targets = random_logits(11, 100, 1000, jnp.bfloat16, round_to=8.0)
    out = token_stats_mgpu(logits, targets, interpret=True, block_rows=64, block_cols=136)
    assert_stats_equal(out, *numpy_stats(logits, targets), atol=LOGP_F32_ABS)


@pytest.mark.parametrize("dtype,limit", [(jnp.float32, None), (jnp.bfloat16, 1900)])
def test_tpu_kernel_interpret_matches_float64(dtype, limit):
    """The Mosaic TPU kernel in interpret mode, with blocks that divide neither T nor V (padded
    edge blocks), matches float64 NumPy exactly in ranks/ties and to 1e-5 in logp."""
    logits, targets = random_logits(3, 50, 2100, dtype, round_to=4.0, neg_inf=0.02)
    targets = targets % (limit or 2100)
    out = token_stats_tpu(logits, targets, vocab_limit=limit, block_rows=16, block_cols=512,
                          interpret=True)
    assert_stats_equal(out, *numpy_stats(logits, targets, limit), atol=LOGP_F32_ABS)


def test_invalid_rows_are_flagged_by_the_kernels():
    """NaN or +inf logits give rank = ties = -1 and logp = NaN; a target logit of -inf gives
    logp = -inf with a valid rank; out-of-range targets under jit are flagged too."""
    logits, targets = random_logits(2, 16, 1000, jnp.float32)
    logits = logits.at[1, 5].set(jnp.nan).at[2, 7].set(jnp.inf)
    logits = logits.at[3, targets[3]].set(-jnp.inf)
    bad_targets = targets.at[4].set(1000).at[5].set(-1)
    for impl in ("pallas_interpret", "pallas_tpu_interpret"):
        out = jax.jit(lambda z, t: rce_kernels.token_stats(z, t, impl=impl))(logits, bad_targets)
        logp, rank, ties = (np.asarray(x) for x in out)
        assert np.isnan(logp[[1, 2, 4, 5]]).all(), impl
        assert (rank[[1, 2, 4, 5]] == -1).all() and (ties[[1, 2, 4, 5]] == -1).all(), impl
        assert logp[3] == -np.inf and rank[3] == int((logits[3] > -jnp.inf).sum()), impl
        ref = rce_kernels.token_stats(logits, bad_targets, impl="xla")
        np.testing.assert_array_equal(rank, np.asarray(ref.rank))


def test_out_of_range_targets_raise_eagerly():
    """Eager calls refuse out-of-range targets with a message that names them."""
    logits, targets = random_logits(1, 8, 300, jnp.float32)
    with pytest.raises(ValueError, match="outside"):
        rce_jax.token_stats(logits, targets.at[2].set(300), impl="pallas_interpret")
    with pytest.raises(ValueError, match="outside"):
        rce_jax.token_stats(logits, targets.at[0].set(299), impl="pallas_interpret",
                            vocab_limit=299)


def test_pallas_impl_explains_what_it_cannot_take():
    """impl='pallas' on CPU, and inputs the GPU kernel cannot stream, raise clear errors; 'auto'
    falls back to the XLA path on CPU."""
    logits, targets = random_logits(1, 12, 301, jnp.bfloat16)
    with pytest.raises(UnsupportedShapeError, match="no Pallas kernel"):
        rce_kernels.token_stats(logits, targets, impl="pallas")
    with pytest.raises(UnsupportedShapeError, match="T % 8 == 0"):
        rce_kernels.token_stats(logits, targets, impl="pallas_interpret")
    assert rce_kernels.plan_token_stats(logits.shape, logits.dtype).impl == "xla"
    with pytest.raises(ValueError, match="unknown token-stats impl"):
        rce_kernels.token_stats(logits, targets, impl="triton")


class TestEntryPointsJittedAndEager(chex.TestCase):
    """The public entry points ``rce_kernels.token_stats`` and ``fused_token_stats`` run eagerly
    and under ``jax.jit`` (``chex.variants``), and each way gives float64 NumPy's exact ranks and
    ties and logp within LOGP_F32_ABS; their chex contracts refuse a wrong rank, a mismatched T or
    D and non-integer targets with a ValueError naming the arrays, jitted or not."""

    @chex.variants(with_jit=True, without_jit=True)
    def test_token_stats(self):
        rng = fresh_rng()
        T, V, limit = 24, 500, 480
        logits = jnp.asarray(np.round(rng.normal(0, 3, (T, V)) * 4) / 4, jnp.float32)  # ties
        targets = jnp.asarray(rng.integers(0, limit, T), jnp.int32)
        stats = self.variant(functools.partial(rce_kernels.token_stats, impl="xla", vocab_limit=limit))
        assert_stats_equal(stats(logits, targets), *numpy_stats(logits, targets, limit), atol=LOGP_F32_ABS)
        with self.assertRaisesRegex(ValueError, r"logits_TxV \[T, V\], targets_T \[T\]"):
            stats(logits[None], targets)
        with self.assertRaisesRegex(ValueError, "T of logits_TxV"):
            stats(logits, targets[:-1])
        with self.assertRaisesRegex(ValueError, "targets_T integers"):
            stats(logits, targets.astype(jnp.float32))

    @chex.variants(with_jit=True, without_jit=True)
    def test_fused_token_stats(self):
        rng = fresh_rng()
        T, D, V = 16, 8, 200
        # Small integers and a bias in eighths: the logits are exact in float32 in any order.
        hidden = jnp.asarray(rng.integers(-2, 3, (T, D)), jnp.float32)
        head = jnp.asarray(rng.integers(-2, 3, (V, D)), jnp.float32)
        bias = jnp.asarray(rng.integers(-8, 9, V) / 8, jnp.float32)
        targets = jnp.asarray(rng.integers(0, V, T), jnp.int32)
        stats = self.variant(functools.partial(rce_kernels.fused_token_stats, impl="xla"))
        logits = np.asarray(hidden, np.float64) @ np.asarray(head, np.float64).T + np.asarray(bias)
        assert_stats_equal(stats(hidden, head, targets, bias_V=bias), *numpy_stats(logits, targets),
                           atol=LOGP_F32_ABS)
        with self.assertRaisesRegex(ValueError, "D of hidden_TxD"):
            stats(hidden[:, :4], head, targets)
        with self.assertRaisesRegex(ValueError, r"bias_V \[V\]"):
            stats(hidden, head, targets, bias_V=bias[:-1])
