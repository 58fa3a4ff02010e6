"""The fused LM-head token statistics (XLA chunked path; GPU and TPU kernels in interpret mode)
against materialised logits + token_stats."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import rce_jax
import rce_kernels
from rce_jax.bench.rank_mismatch import problem as rank_mismatch_problem
from rce_kernels.fused import fused_token_stats_xla
from rce_kernels.fused_common import tile_logits
from rce_kernels.fused_gpu import fused_token_stats_mgpu
from rce_kernels.fused_tpu import fused_token_stats_tpu
from tolerances import LOGP_F32_ABS, NEAR_TIE_RANK_FLIPS_MAX_SHARE


def materialise(hidden, head, bias, logits_dtype):
    """The logits a model would write: float32-accumulated matmul plus bias, rounded once."""
    acc = jnp.dot(hidden, head.T, preferred_element_type=jnp.float32,
                  precision=jax.lax.Precision.HIGHEST)
    return (acc + bias.astype(jnp.float32)).astype(logits_dtype)


def integer_problem(seed, T, D, V, dtype):
    """Small-integer hidden states and head, bias in eighths: every dot product and bias sum is
    exact in float32 in any summation order, so every implementation sees identical logits
    (with many exact ties)."""
    k = jax.random.split(jax.random.key(seed), 4)
    hidden = jax.random.randint(k[0], (T, D), -2, 3).astype(dtype)
    head = jax.random.randint(k[1], (V, D), -2, 3).astype(dtype)
    bias = jax.random.randint(k[2], (V,), -8, 9).astype(jnp.float32) / 8
    targets = jax.random.randint(k[3], (T,), 0, V)
    return hidden, head, bias, targets


# Continuous random problems: the fused-head rank-mismatch study's own generator (hidden ~ N(0, 1),
# head ~ N(0, 1/D), bias ~ N(0, 0.01)), so these tests see the data it measures on.
continuous_problem = rank_mismatch_problem


def check_equal(out, ref):
    np.testing.assert_array_equal(np.asarray(out.rank), np.asarray(ref.rank))
    np.testing.assert_array_equal(np.asarray(out.ties), np.asarray(ref.ties))
    np.testing.assert_allclose(np.asarray(out.logp), np.asarray(ref.logp), rtol=0, atol=LOGP_F32_ABS)


FUSED = {
    "xla": lambda *a, **kw: fused_token_stats_xla(*a, block_rows=64, block_cols=384, **kw),
    "tpu_interpret": lambda *a, **kw: fused_token_stats_tpu(
        *a, block_rows=48, block_cols=256, interpret=True, **kw),
    "gpu_interpret": lambda *a, **kw: fused_token_stats_mgpu(*a, block_cols=128, interpret=True,
                                                             **kw),
}


# The GPU kernel multiplies 16-bit operands only (WGMMA), so it has no f32 case.
@pytest.mark.parametrize("impl,dtype", [
    ("xla", jnp.float32), ("xla", jnp.bfloat16), ("tpu_interpret", jnp.float32),
    ("tpu_interpret", jnp.bfloat16), ("gpu_interpret", jnp.bfloat16),
])
def test_fused_equals_materialised_on_exact_logits(impl, dtype):
    """With logits that every backend computes exactly (integer data), each fused path gives the
    materialised path's ranks and ties exactly and its logp to 1e-5, with a bias, a vocab_limit,
    and blocks that divide neither T = 70 nor V = 1001."""
    hidden, head, bias, targets = integer_problem(7, 70, 96, 1001, dtype)
    targets = targets % 990
    out = FUSED[impl](hidden, head, targets, bias, vocab_limit=990)
    ref = rce_kernels.token_stats(materialise(hidden, head, bias, dtype), targets,
                                  vocab_limit=990, impl="xla")
    assert int((np.asarray(ref.ties) > 0).sum()) > 10  # the data does exercise ties
    check_equal(out, ref)


def test_fused_logits_dtype_emulates_lower_precision_logits():
    """logits_dtype=bf16 on f32 operands ranks the bf16-rounded logits (many ties), as
    materialised bf16 logits would."""
    hidden, head, bias, targets = continuous_problem(3, 64, 32, 700, jnp.float32)
    out = fused_token_stats_xla(hidden, head, targets, bias, logits_dtype=jnp.bfloat16,
                                block_rows=32, block_cols=256)
    ref = rce_kernels.token_stats(materialise(hidden, head, bias, jnp.bfloat16), targets,
                                  impl="xla")
    assert int((np.asarray(ref.ties) > 0).sum()) > 0
    check_equal(out, ref)


def tiled_logits(hidden, head, bias, block_rows, block_cols):
    """The logits assembled from dots of the fused XLA path's tile shapes (clamped last blocks)."""
    T, V = hidden.shape[0], head.shape[0]
    out = np.zeros((T, V), np.float32)
    for r in range(0, T, block_rows):
        r0 = min(r, T - block_rows)
        for c in range(0, V, block_cols):
            c0 = min(c, V - block_cols)
            out[r0:r0 + block_rows, c0:c0 + block_cols] = tile_logits(
                hidden[r0:r0 + block_rows], head[c0:c0 + block_cols],
                bias[None, c0:c0 + block_cols], jnp.float32)
    return jnp.asarray(out)


def test_fused_f32_on_random_data():
    """On continuous random f32 data the fused XLA path equals token_stats of the logits it
    computes tile by tile, exactly. Against one XLA matmul (whose CPU dot rounds differently for
    a different matrix shape) ranks may differ only where the target and another entry lie
    closer than twice the largest difference between the two computations; such rows stay
    under NEAR_TIE_RANK_FLIPS_MAX_SHARE (1%), and logp agrees to 1e-5."""
    hidden, head, bias, targets = continuous_problem(11, 256, 64, 5003, jnp.float32)
    out = fused_token_stats_xla(hidden, head, targets, bias, block_rows=128, block_cols=1024)
    tiled = tiled_logits(hidden, head, bias, 128, 1024)
    check_equal(out, rce_kernels.token_stats(tiled, targets, impl="xla"))

    logits = materialise(hidden, head, bias, jnp.float32)
    ref = rce_kernels.token_stats(logits, targets, impl="xla")
    gap = 2 * float(jnp.max(jnp.abs(tiled - logits)))
    bad = np.flatnonzero(np.asarray(out.rank) != np.asarray(ref.rank))
    assert len(bad) <= NEAR_TIE_RANK_FLIPS_MAX_SHARE * len(targets)
    z = np.asarray(logits)
    for t in bad:
        y = int(targets[t])
        assert (np.abs(np.delete(z[t], y) - z[t, y]) <= gap).any(), t
    np.testing.assert_allclose(np.asarray(out.logp), np.asarray(ref.logp), rtol=0, atol=LOGP_F32_ABS)


def test_fused_wrapper_validates_and_reshapes():
    """rce_jax.token_stats_fused takes [B, L, d] hidden states, returns [B, L] outputs equal to
    the flat call, and refuses mismatched shapes and out-of-range targets with clear errors."""
    hidden, head, bias, targets = integer_problem(5, 24, 16, 300, jnp.float32)
    out = rce_jax.token_stats_fused(hidden.reshape(4, 6, 16), head, targets.reshape(4, 6),
                                    bias=bias, impl="xla")
    flat = rce_jax.token_stats_fused(hidden, head, targets, bias=bias, impl="xla")
    assert out.rank.shape == (4, 6)
    np.testing.assert_array_equal(np.asarray(out.rank).reshape(-1), np.asarray(flat.rank))
    with pytest.raises(ValueError, match="hidden width"):
        rce_jax.token_stats_fused(hidden[:, :8], head, targets)
    with pytest.raises(ValueError, match="bias shape"):
        rce_jax.token_stats_fused(hidden, head, targets, bias=bias[:-1])
    with pytest.raises(ValueError, match="outside"):
        rce_jax.token_stats_fused(hidden, head, targets.at[3].set(300))
    with pytest.raises(rce_kernels.UnsupportedShapeError, match="16-bit"):
        rce_kernels.fused_token_stats(hidden, head, targets, impl="pallas_interpret")
