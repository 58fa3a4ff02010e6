"""The Pallas kernels lower for their devices (Mosaic TPU and Mosaic GPU) on this CPU machine."""

import jax
import jax.numpy as jnp
import pytest
from rce_kernels.fused_gpu import fused_token_stats_mgpu
from rce_kernels.fused_tpu import fused_token_stats_tpu
from rce_kernels.token_stats_gpu import token_stats_mgpu
from rce_kernels.token_stats_tpu import token_stats_tpu


def export(fn, platform, *shapes):
    args = [jax.ShapeDtypeStruct(s, d) for s, d in shapes]
    exported = jax.export.export(jax.jit(fn), platforms=[platform])(*args)
    return exported.mlir_module()


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.bfloat16])
def test_tpu_kernels_lower(dtype):
    """jax.export for TPU succeeds for the token-stats kernel (a V that is no multiple of the
    block, and a vocab_limit) and for the fused kernel with a bias; the module holds the Mosaic
    custom call."""
    T, V, D = 1000, 50257, 512
    mod = export(lambda z, t: token_stats_tpu(z, t, vocab_limit=50000), "tpu",
                 ((T, V), dtype), ((T,), jnp.int32))
    assert "tpu_custom_call" in mod
    mod = export(lambda h, w, t, b: fused_token_stats_tpu(h, w, t, b), "tpu",
                 ((T, D), dtype), ((V, D), dtype), ((T,), jnp.int32), ((V,), jnp.float32))
    assert "tpu_custom_call" in mod


@pytest.mark.parametrize("dtype,V", [(jnp.bfloat16, 151936), (jnp.bfloat16, 50257),
                                     (jnp.float32, 50257)])
def test_gpu_kernels_lower(dtype, V):
    """jax.export for CUDA lowers the Mosaic GPU token-stats kernel (aligned rows, and rows that
    need 8- or 4-row groups for TMA) and, for 16-bit operands, the fused WGMMA kernel."""
    T, D = 2048, 256
    mod = export(lambda z, t: token_stats_mgpu(z, t), "cuda",
                 ((T, V), dtype), ((T,), jnp.int32))
    assert "mosaic_gpu" in mod
    if dtype == jnp.bfloat16:
        mod = export(lambda h, w, t, b: fused_token_stats_mgpu(h, w, t, b), "cuda",
                     ((T, D), dtype), ((V, D), dtype), ((T,), jnp.int32), ((V,), jnp.float32))
        assert "mosaic_gpu" in mod
