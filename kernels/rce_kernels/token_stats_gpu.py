"""Token statistics on GPU: a Pallas Mosaic GPU kernel (Hopper and later).

One pass over the materialised logits. Each program (one warpgroup, ``block_rows`` rows) streams
its rows' vocabulary through a ring of ``num_buffers`` shared-memory tiles filled by TMA copies,
and keeps per row a running max, a rescaled sum of exponentials and the counts of entries
greater than / equal to the target logit, which XLA gathered beforehand (exact: it is read from
the row). The shared epilogue ``reference.finalize`` turns these into ``(logp, rank, ties)``.

Why Mosaic GPU and not Triton: see BUILD_NOTES.md, kernels section (Triton lowering is deprecated in JAX 0.11
and Mosaic GPU is its default Pallas GPU backend; TMA + mbarrier pipelining is Hopper's way to
stream at full bandwidth).

Layout details that matter on the device:

* TMA needs the row stride in bytes to be a multiple of 16. When ``V * itemsize`` is not (GPT-2's
  50257), the logits are viewed, for free, as ``[T / k, k * V]`` "super-rows" of ``k`` rows with
  an aligned stride; each super-row holds ``k`` segments that are streamed one after another.
  This needs ``T % k == 0`` (``k <= 8``).
* Tiles are read at unaligned column offsets (the last tile of a segment is clamped to end inside
  the array and the columns an earlier tile already covered are masked, so nothing is padded or
  read out of bounds); the shared-memory tile is therefore untiled, and its width
  (``block_cols``, default 136) is chosen so that rows start 16 (2-byte types) or 32 (f32) bytes
  apart modulo 128: the WGMMA-layout register loads are then free of bank conflicts.
* The last row block is clamped to end at the last row too; rows computed twice are written twice
  with identical values.

``interpret=True`` runs the same kernel body in Pallas' GPU interpret mode on any backend (layout
casts, which only steer register layouts on the device, are skipped there).
"""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
from jax import lax
from jax.experimental import pallas as pl
from jax.experimental.pallas import mosaic_gpu as plgpu

from .reference import TokenStats, finalize, gather_target_logits, resolve_vocab_limit

SUPPORTED_DTYPES = (jnp.bfloat16, jnp.float16, jnp.float32)
DEFAULT_BLOCK_ROWS = 64  # one warpgroup in the WGMMA register layout: a multiple of 64
DEFAULT_BLOCK_COLS = 136  # 272 / 544 bytes per row: conflict-free WGMMA-layout loads (see above)
DEFAULT_NUM_BUFFERS = 4
MAX_COUNT = 1 << 24  # counts are accumulated in float32: exact below 2**24


class UnsupportedShapeError(ValueError):
    """A Pallas kernel cannot take this input; the message says why (``impl="auto"`` then
    falls back to the XLA path)."""


def interpret_params():
    """Pallas' GPU interpret mode (simulated shared memory, TMA and barriers), or a clear error."""
    try:
        from jax._src.pallas.mosaic_gpu.interpret.params import InterpretGPUParams
    except ImportError as e:  # pragma: no cover - depends on the JAX version
        raise RuntimeError(
            f"this JAX ({jax.__version__}) has no Pallas GPU interpret mode; "
            "use impl='xla' on this backend"
        ) from e
    return InterpretGPUParams()


def row_group(vocab_size: int, itemsize: int) -> int:
    """Rows per super-row so that the super-row stride is a multiple of 16 bytes (TMA)."""
    return 16 // math.gcd(16, vocab_size * itemsize)


def padded_rows(rows: int) -> int:
    """Length of the small per-row arrays: rounded up so that their TMA strides are aligned."""
    return -(-rows // 8) * 8


def check_supported(shape, dtype, vocab_limit, *, block_rows, block_cols, interpret) -> None:
    """Raise UnsupportedShapeError naming the constraint this input breaks."""
    T, V = shape
    dtype = jnp.dtype(dtype)
    if dtype not in tuple(map(jnp.dtype, SUPPORTED_DTYPES)):
        raise UnsupportedShapeError(f"the GPU kernel takes bf16, f16 or f32 logits, not {dtype}")
    limit = resolve_vocab_limit(V, vocab_limit)
    if limit >= MAX_COUNT:
        raise UnsupportedShapeError(f"vocabulary {limit} too large for float32 counts")
    if not interpret and block_rows % 64:
        raise UnsupportedShapeError(f"block_rows={block_rows} must be a multiple of 64 on GPU")
    if block_cols % 8 or not 8 <= block_cols <= 256:
        raise UnsupportedShapeError(f"block_cols={block_cols} must be a multiple of 8 in [8, 256]")
    k = row_group(V, dtype.itemsize)
    if T % k:
        raise UnsupportedShapeError(
            f"a row of {V} {dtype} logits is {V * dtype.itemsize} bytes, not a multiple of 16, so "
            f"the kernel streams groups of {k} rows and needs T % {k} == 0 (got T={T})"
        )
    if T // k < block_rows:
        raise UnsupportedShapeError(
            f"T={T} gives {T // k} (super-)rows, fewer than block_rows={block_rows}"
        )
    if k * V < block_cols:
        raise UnsupportedShapeError(f"vocabulary {V} narrower than block_cols={block_cols}")


def _build_kernel(T, V, limit, dtype, *, block_rows, block_cols, num_buffers, approx_math,
                  interpret):
    k = row_group(V, jnp.dtype(dtype).itemsize)
    rows, width = T // k, k * V  # the super-row view of the logits
    rows_pad = padded_rows(rows)
    bt, bv = block_rows, block_cols
    nv = pl.cdiv(limit, bv)  # tiles per segment
    n_steps = k * nv
    nbuf = min(num_buffers, n_steps)
    layout = plgpu.Layout.WGMMA
    row_layout = plgpu.Layout.WGMMA.reduce(1)

    def cast(x, lay):  # register layouts only exist on the device
        return x if interpret else plgpu.layout_cast(x, lay)

    def body(zy_gmem, x_gmem, out_gmem, tiles, ready, zy_smem, out_smem, zy_ready):
        r0 = jnp.minimum(lax.axis_index("rows") * bt, rows - bt)

        def tile_start(step):
            seg, j = step // nv, step % nv
            return seg, j, jnp.minimum(seg * V + j * bv, width - bv)

        def fetch(step):
            _, _, c0 = tile_start(step)
            slot = lax.rem(step, nbuf)
            plgpu.copy_gmem_to_smem(
                x_gmem.at[pl.ds(r0, bt), pl.ds(c0, bv)], tiles.at[slot], ready.at[slot]
            )

        plgpu.copy_gmem_to_smem(zy_gmem.at[:, pl.ds(r0, bt)], zy_smem, zy_ready.at[0])
        for step in range(nbuf):
            fetch(step)
        plgpu.barrier_wait(zy_ready.at[0])

        def segment(seg, _):
            zy = cast(zy_smem.at[seg][...], row_layout)
            zy_b = lax.broadcast_in_dim(zy, (bt, bv), [0])

            def tile(j, carry):
                row_max, sum_exp, n_gt, n_eq = carry
                step = seg * nv + j
                slot = lax.rem(step, nbuf)
                plgpu.barrier_wait(ready.at[slot])
                x = cast(tiles.at[slot][...], layout).astype(jnp.float32)
                _, _, c0 = tile_start(step)
                col = cast(lax.broadcasted_iota(jnp.int32, (bt, bv), 1), layout) + (c0 - seg * V)
                valid = (col >= j * bv) & (col < limit)
                x = jnp.where(valid, x, -jnp.inf)
                new_max = jnp.maximum(row_max, jnp.max(x, axis=1))
                shift = jnp.where(new_max == -jnp.inf, 0.0, new_max)
                shift_b = lax.broadcast_in_dim(shift, (bt, bv), [0])
                sum_exp = sum_exp * jnp.exp(row_max - shift) + jnp.sum(jnp.exp(x - shift_b), axis=1)
                n_gt = n_gt + jnp.sum(jnp.where(x > zy_b, 1.0, 0.0), axis=1)
                n_eq = n_eq + jnp.sum(jnp.where(valid & (x == zy_b), 1.0, 0.0), axis=1)

                @pl.when(step + nbuf < n_steps)
                def _():
                    fetch(step + nbuf)

                return new_max, sum_exp, n_gt, n_eq

            init = (
                cast(jnp.full((bt,), -jnp.inf, jnp.float32), row_layout),
                *(cast(jnp.zeros((bt,), jnp.float32), row_layout) for _ in range(3)),
            )
            for q, value in enumerate(lax.fori_loop(0, nv, tile, init)):
                out_smem.at[q, seg][...] = value
            return 0

        lax.fori_loop(0, k, segment, 0)
        plgpu.commit_smem()
        plgpu.copy_smem_to_gmem(out_smem, out_gmem.at[:, :, pl.ds(r0, bt)])
        plgpu.wait_smem_to_gmem(0)

    scratch = [
        plgpu.SMEM((nbuf, bt, bv), dtype),
        plgpu.Barrier(num_barriers=nbuf),
        plgpu.SMEM((k, bt), jnp.float32),
        plgpu.SMEM((4, k, bt), jnp.float32),
        plgpu.Barrier(num_barriers=1),
    ]
    return plgpu.kernel(
        body,
        out_type=jax.ShapeDtypeStruct((4, k, rows_pad), jnp.float32),
        grid=(pl.cdiv(rows, bt),),
        grid_names=("rows",),
        scratch_types=scratch,
        compiler_params=plgpu.CompilerParams(
            lowering_semantics=plgpu.LoweringSemantics.Lane, approx_math=approx_math
        ),
        interpret=interpret_params() if interpret else None,
    ), k


@functools.partial(
    jax.jit,
    static_argnames=("vocab_limit", "block_rows", "block_cols", "num_buffers", "approx_math",
                     "interpret"),
)
def token_stats_mgpu(logits_TxV, targets_T, *, vocab_limit=None, block_rows=DEFAULT_BLOCK_ROWS,
                     block_cols=DEFAULT_BLOCK_COLS, num_buffers=DEFAULT_NUM_BUFFERS,
                     approx_math=False, interpret=False) -> TokenStats:
    """Token statistics of ``logits_TxV`` with the Mosaic GPU kernel (semantics: reference.py).

    Raises UnsupportedShapeError for inputs the kernel cannot take (see ``check_supported``).
    """
    T, V = logits_TxV.shape
    check_supported(logits_TxV.shape, logits_TxV.dtype, vocab_limit, block_rows=block_rows,
                    block_cols=block_cols, interpret=interpret)
    limit = resolve_vocab_limit(V, vocab_limit)
    targets_T = targets_T.astype(jnp.int32)
    z_y = gather_target_logits(logits_TxV, targets_T, limit)
    call, k = _build_kernel(T, V, limit, logits_TxV.dtype, block_rows=block_rows,
                            block_cols=block_cols, num_buffers=num_buffers,
                            approx_math=approx_math, interpret=interpret)
    # Row t = k * a + s of the logits is segment s of super-row a.
    rows = T // k
    zy_KxR = jnp.pad(z_y.reshape(rows, k).T, ((0, 0), (0, padded_rows(rows) - rows)))
    out = call(zy_KxR, logits_TxV.reshape(rows, k * V))
    row_max, sum_exp, n_gt, n_eq = (q[:, :rows].T.reshape(T) for q in out)
    return finalize(z_y, row_max, sum_exp, n_gt.astype(jnp.int32), n_eq.astype(jnp.int32),
                    targets_T, limit)
