"""One entry point for every token-statistics implementation, materialised and fused.

``impl`` names:

* ``"auto"``: the Pallas kernel of the default backend where there is one and it takes the
  input (TPU; CUDA GPUs of compute capability 9.x (Hopper)), else ``"xla"``;
* ``"xla"``: the streaming pure-JAX implementation (any backend);
* ``"naive"``: the obvious jnp version (materialised logits only; benchmarks and reference);
* ``"pallas"``: the Pallas kernel of the default backend (Mosaic GPU or Mosaic TPU); raises
  ``UnsupportedShapeError`` (a ValueError) naming the reason when it cannot run;
* ``"pallas_interpret"``: the GPU kernel's code in Pallas' GPU interpret mode, on any backend
  (what the CPU tests run; slow). The fused GPU kernel takes 16-bit operands only;
* ``"pallas_tpu_interpret"``: the TPU kernel's code in Pallas' interpret mode, on any backend.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from .fused import fused_token_stats_xla
from .fused_gpu import DEFAULT_BLOCK_COLS as FUSED_GPU_BLOCK_COLS
from .fused_gpu import check_supported as check_fused_gpu
from .fused_gpu import fused_token_stats_mgpu
from .fused_tpu import fused_token_stats_tpu
from .reference import TokenStats, token_stats_naive, token_stats_xla
from .token_stats_gpu import (
    DEFAULT_BLOCK_COLS,
    DEFAULT_BLOCK_ROWS,
    UnsupportedShapeError,
    row_group,
    token_stats_mgpu,
)
from .token_stats_gpu import check_supported as check_gpu
from .token_stats_tpu import token_stats_tpu

IMPLS = ("auto", "xla", "naive", "pallas", "pallas_interpret", "pallas_tpu_interpret")
_KERNEL_DTYPES = tuple(map(jnp.dtype, (jnp.bfloat16, jnp.float16, jnp.float32)))
INTERPRET_BLOCK_COLS = 256  # fewer (slow) interpreted steps; any width is legal in interpret mode


def available_impls() -> tuple[str, ...]:
    return IMPLS


def _hopper() -> bool:
    """Compute capability 9.x: the GPU kernels use Hopper's TMA and WGMMA (sm_90a); WGMMA does
    not exist on later architectures, so those take the XLA path."""
    device = jax.devices()[0]
    try:
        return 9.0 <= float(getattr(device, "compute_capability", "0")) < 10.0
    except ValueError:
        return False


def resolve_impl(impl: str) -> str:
    """The concrete implementation ``impl`` names on the default backend: one of ``"xla"``,
    ``"naive"``, ``"pallas_gpu"``, ``"pallas_tpu"``, ``"pallas_interpret"``."""
    if impl not in IMPLS:
        raise ValueError(f"unknown token-stats impl {impl!r}; choose one of {IMPLS}")
    backend = jax.default_backend()
    if impl == "auto":
        if backend == "tpu":
            return "pallas_tpu"
        if backend == "gpu" and _hopper():
            return "pallas_gpu"
        return "xla"
    if impl == "pallas":
        if backend == "tpu":
            return "pallas_tpu"
        if backend == "gpu":
            if not _hopper():
                raise UnsupportedShapeError(
                    "the Pallas GPU kernels use Mosaic GPU (TMA, WGMMA) and need a CUDA GPU of "
                    "compute capability 9.x (Hopper); use impl='xla'"
                )
            return "pallas_gpu"
        raise UnsupportedShapeError(
            f"no Pallas kernel compiles for the {backend!r} backend; use impl='xla' or "
            "impl='pallas_interpret'"
        )
    return impl


def _interpret_block_rows(T, V, itemsize):
    return max(1, min(64, T // row_group(V, itemsize)))


def token_stats(logits_TxV, targets_T, *, vocab_limit=None, impl="auto") -> TokenStats:
    """Token statistics of ``logits_TxV`` [T, V] against ``targets_T`` [T] (see reference.py)."""
    T, V = logits_TxV.shape
    kind = resolve_impl(impl)
    try:
        if kind == "pallas_gpu":
            check_gpu(logits_TxV.shape, logits_TxV.dtype, vocab_limit,
                      block_rows=DEFAULT_BLOCK_ROWS, block_cols=DEFAULT_BLOCK_COLS,
                      interpret=False)
            return token_stats_mgpu(logits_TxV, targets_T, vocab_limit=vocab_limit)
        if kind == "pallas_tpu":
            if jnp.dtype(logits_TxV.dtype) not in _KERNEL_DTYPES:
                raise UnsupportedShapeError(
                    f"the TPU kernel takes bf16/f16/f32, not {logits_TxV.dtype}"
                )
            return token_stats_tpu(logits_TxV, targets_T, vocab_limit=vocab_limit)
    except UnsupportedShapeError:
        if impl != "auto":
            raise
        kind = "xla"
    if kind == "pallas_interpret":
        return token_stats_mgpu(
            logits_TxV, targets_T, vocab_limit=vocab_limit, interpret=True,
            block_rows=_interpret_block_rows(T, V, jnp.dtype(logits_TxV.dtype).itemsize),
            block_cols=min(INTERPRET_BLOCK_COLS, V // 8 * 8),
        )
    if kind == "pallas_tpu_interpret":
        return token_stats_tpu(logits_TxV, targets_T, vocab_limit=vocab_limit, interpret=True)
    if kind == "naive":
        return token_stats_naive(logits_TxV, targets_T, vocab_limit=vocab_limit)
    return token_stats_xla(logits_TxV, targets_T, vocab_limit=vocab_limit)


def fused_token_stats(hidden_TxD, head_VxD, targets_T, *, bias_V=None, vocab_limit=None,
                      logits_dtype=None, impl="auto", precision=None, return_lse=False):
    """Token statistics of the logits ``hidden @ head.T + bias`` (float32 accumulation, rounded
    once to ``logits_dtype``, default the hidden dtype) without materialising them.

    ``precision`` (a ``jax.lax.Precision``) applies to the XLA and TPU paths; the GPU kernel
    multiplies 16-bit operands on the tensor cores. With ``return_lse`` also returns the per-row
    log-sum-exp (float32). ``impl="naive"`` is not available here.
    """
    kind = resolve_impl(impl)
    opts = dict(vocab_limit=vocab_limit, logits_dtype=logits_dtype, return_lse=return_lse)
    if kind == "naive":
        raise ValueError("impl='naive' exists only for materialised logits")
    try:
        if kind == "pallas_gpu":
            check_fused_gpu(hidden_TxD.dtype, head_VxD.dtype, head_VxD.shape[0],
                            block_cols=FUSED_GPU_BLOCK_COLS)
            return fused_token_stats_mgpu(hidden_TxD, head_VxD, targets_T, bias_V, **opts)
        if kind == "pallas_tpu":
            for dt in (hidden_TxD.dtype, head_VxD.dtype):
                if jnp.dtype(dt) not in _KERNEL_DTYPES:
                    raise UnsupportedShapeError(
                        f"the TPU fused kernel takes bf16/f16/f32, not {dt}"
                    )
            return fused_token_stats_tpu(hidden_TxD, head_VxD, targets_T, bias_V,
                                         precision=precision, **opts)
    except UnsupportedShapeError:
        if impl != "auto":
            raise
        kind = "xla"
    if kind == "pallas_interpret":
        return fused_token_stats_mgpu(hidden_TxD, head_VxD, targets_T, bias_V, interpret=True,
                                      **opts)
    if kind == "pallas_tpu_interpret":
        return fused_token_stats_tpu(hidden_TxD, head_VxD, targets_T, bias_V, interpret=True,
                                     precision=precision, **opts)
    return fused_token_stats_xla(hidden_TxD, head_VxD, targets_T, bias_V, precision=precision,
                                 **opts)
