"""What each token-statistics implementation supports, and why it refuses an input.

One declaration per concrete implementation (``SUPPORT``): the backend it compiles for, the
device generation, the dtypes and the shape constraints, in words (``docs/kernels.md`` prints
them as a table), plus ``why_not(problem, device)``: ``None`` when the implementation takes the
input on that device, else a one-line reason. ``dispatch`` plans with these and nothing else,
and the kernels' own wrappers call the same checks, so a refusal reads the same wherever it
comes from.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Callable

import jax
import jax.numpy as jnp

MAX_COUNT = 1 << 24  # the GPU kernels count in float32: exact below 2**24 entries
KERNEL_DTYPES = ("bfloat16", "float16", "float32")
GPU_FUSED_DTYPES = ("bfloat16", "float16")
GPU_BLOCK_ROWS = 64  # one warpgroup in the WGMMA register layout
GPU_BLOCK_COLS = 136  # token statistics: conflict-free WGMMA-layout loads (token_stats_gpu.py)
GPU_FUSED_BLOCK_COLS = 128
INTERPRET_BLOCK_COLS = 256  # interpret mode: any multiple of 8 in [8, 256] is legal


class UnsupportedShapeError(ValueError):
    """An implementation cannot take this input here; the message says why. ``impl="auto"``
    then takes the next candidate; an explicitly named implementation raises it."""


@dataclasses.dataclass(frozen=True)
class Problem:
    """The static description of one call: materialised logits ``[T, V]`` (``D`` is None) or the
    fused head (hidden ``[T, D]``, head ``[V, D]``)."""

    T: int
    V: int
    dtype: str  # logits dtype (materialised) or hidden dtype (fused)
    vocab_limit: int | None = None
    D: int | None = None
    head_dtype: str | None = None

    @property
    def fused(self) -> bool:
        return self.D is not None

    @property
    def limit(self) -> int:
        return self.V if self.vocab_limit is None else self.vocab_limit


@dataclasses.dataclass(frozen=True)
class Device:
    """The device a plan is made for: backend (``cpu``/``gpu``/``tpu``) and, on CUDA, the
    compute capability (``"9.0"``)."""

    backend: str
    compute_capability: str | None = None

    @classmethod
    def default(cls) -> "Device":
        device = jax.devices()[0]
        return cls(jax.default_backend(), getattr(device, "compute_capability", None))

    @property
    def hopper(self) -> bool:
        """Compute capability 9.x: TMA and WGMMA (sm_90a). WGMMA does not exist on later
        architectures, so Blackwell takes the XLA path."""
        try:
            return 9.0 <= float(self.compute_capability or "0") < 10.0
        except ValueError:
            return False


def row_group(vocab_size: int, itemsize: int) -> int:
    """Rows per super-row so that the super-row stride is a multiple of 16 bytes (TMA)."""
    return 16 // math.gcd(16, vocab_size * itemsize)


def gpu_token_stats_reason(p: Problem, *, block_rows=GPU_BLOCK_ROWS, block_cols=GPU_BLOCK_COLS,
                           interpret=False) -> str | None:
    """Why the Mosaic GPU token-statistics kernel cannot take ``p`` (None: it can)."""
    dtype = jnp.dtype(p.dtype)
    if dtype.name not in KERNEL_DTYPES:
        return f"the GPU kernel takes bf16, f16 or f32 logits, not {dtype}"
    if p.limit >= MAX_COUNT:
        return f"vocabulary {p.limit} too large for float32 counts"
    if not interpret and block_rows % 64:
        return f"block_rows={block_rows} must be a multiple of 64 on GPU"
    if block_cols % 8 or not 8 <= block_cols <= 256:
        return f"block_cols={block_cols} must be a multiple of 8 in [8, 256]"
    k = row_group(p.V, dtype.itemsize)
    if p.T % k:
        return (f"a row of {p.V} {dtype} logits is {p.V * dtype.itemsize} bytes, not a multiple "
                f"of 16, so the kernel streams groups of {k} rows and needs T % {k} == 0 "
                f"(got T={p.T})")
    if p.T // k < block_rows:
        return f"T={p.T} gives {p.T // k} (super-)rows, fewer than block_rows={block_rows}"
    if k * p.V < block_cols:
        return f"vocabulary {p.V} narrower than block_cols={block_cols}"
    return None


def gpu_fused_reason(p: Problem, *, block_cols=GPU_FUSED_BLOCK_COLS) -> str | None:
    """Why the Mosaic GPU fused kernel cannot take ``p`` (None: it can)."""
    for dt in (p.dtype, p.head_dtype):
        if jnp.dtype(dt).name not in GPU_FUSED_DTYPES:
            return (f"the GPU fused kernel multiplies 16-bit (bf16/f16) operands on WGMMA, not "
                    f"{jnp.dtype(dt)} (pass --dtype bfloat16, or the materialised path)")
    if jnp.dtype(p.dtype) != jnp.dtype(p.head_dtype):
        return "hidden and head must have the same dtype"
    if block_cols % 64 or not 64 <= block_cols <= 256:
        return f"block_cols={block_cols} must be 64, 128, 192 or 256"
    if p.V >= MAX_COUNT:
        return f"vocabulary {p.V} too large for float32 counts"
    return None


def tpu_reason(p: Problem) -> str | None:
    """Why the Mosaic TPU kernels cannot take ``p`` (None: they can)."""
    for dt in (p.dtype,) + ((p.head_dtype,) if p.fused else ()):
        if jnp.dtype(dt).name not in KERNEL_DTYPES:
            return f"the TPU kernels take bf16/f16/f32, not {jnp.dtype(dt)}"
    return None


def _on(backend: str, device: Device, what: str) -> str | None:
    if device.backend != backend:
        return f"{what} compiles for the {backend!r} backend, this is {device.backend!r}"
    return None


def _pallas_gpu(p: Problem, device: Device) -> str | None:
    reason = _on("gpu", device, "the Mosaic GPU kernel")
    if reason is None and not device.hopper:
        reason = (f"the Mosaic GPU kernels use TMA and WGMMA (sm_90a) and need compute "
                  f"capability 9.x (Hopper), this GPU has {device.compute_capability}")
    if reason is None:
        reason = gpu_fused_reason(p) if p.fused else gpu_token_stats_reason(p)
    return reason


def _pallas_tpu(p: Problem, device: Device) -> str | None:
    return _on("tpu", device, "the Mosaic TPU kernel") or tpu_reason(p)


def interpret_gpu_blocks(T: int, V: int, dtype) -> dict:
    """``block_rows`` / ``block_cols`` of the GPU token-statistics kernel in interpret mode:
    as many rows as fit (up to ``GPU_BLOCK_ROWS``) and the widest legal tile (fewer slow
    interpreted steps); the plan checks and ``dispatch`` runs exactly these."""
    rows = T // row_group(V, jnp.dtype(dtype).itemsize)
    return dict(block_rows=max(1, min(GPU_BLOCK_ROWS, rows)),
                block_cols=min(INTERPRET_BLOCK_COLS, V // 8 * 8))


def _interpret_gpu(p: Problem, device: Device) -> str | None:
    del device
    if p.fused:
        return gpu_fused_reason(p)
    return gpu_token_stats_reason(p, interpret=True, **interpret_gpu_blocks(p.T, p.V, p.dtype))


def _interpret_tpu(p: Problem, device: Device) -> str | None:
    del device
    return tpu_reason(p)


def _naive(p: Problem, device: Device) -> str | None:
    del device
    return "impl='naive' exists only for materialised logits" if p.fused else None


@dataclasses.dataclass(frozen=True)
class Support:
    """One implementation's declaration (see the module docstring)."""

    impl: str
    backend: str
    devices: str
    dtypes: str
    shapes: str
    why_not: Callable[[Problem, Device], str | None] = dataclasses.field(compare=False)


SUPPORT = {
    s.impl: s for s in (
        Support("pallas_gpu", "gpu", "CUDA compute capability 9.x (H100, H200: sm_90a)",
                "logits bf16/f16/f32; fused: bf16/f16 operands",
                f"T % k == 0 where k = 16 / gcd(16, V * itemsize) (TMA stride), T / k >= "
                f"{GPU_BLOCK_ROWS}, V < 2**24", _pallas_gpu),
        Support("pallas_tpu", "tpu", "any TPU (Mosaic TPU)", "bf16/f16/f32", "any T, V",
                _pallas_tpu),
        Support("xla", "any", "any", "any floating dtype", "any T, V", lambda p, d: None),
        Support("naive", "any", "any", "any floating dtype", "materialised logits only", _naive),
        Support("pallas_interpret", "any", "any (Pallas GPU interpret mode; slow)",
                "as pallas_gpu", "as pallas_gpu, any block_rows", _interpret_gpu),
        Support("pallas_tpu_interpret", "any", "any (Pallas TPU interpret mode; slow)",
                "bf16/f16/f32", "any T, V", _interpret_tpu),
    )
}
