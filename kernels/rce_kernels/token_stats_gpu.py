"""Token statistics on GPU: a Pallas Mosaic GPU kernel (Hopper and later).

One pass over the materialised logits. Each program (one warpgroup, ``block_rows`` rows) streams
its rows' vocabulary through a ring of ``num_buffers`` shared-memory tiles filled by TMA copies,
and folds each tile into the row statistics with ``fold.fold_tile`` (the same update as the
pure-JAX reference; counts in float32), against the target logit, which XLA gathered beforehand
(exact: it is read from the row), and the target column (never counted against itself). The shared epilogue ``reference.finalize`` turns these into ``(logp, rank, ties)``.

Why Mosaic GPU and not Triton: docs/decisions.md#kernels (Triton lowering is deprecated in JAX 0.11
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

import jax
import jax.numpy as jnp
from jax import lax
from jax.experimental import pallas as pl
from jax.experimental.pallas import mosaic_gpu as plgpu

from .fold import fold_tile, init_carry
from .reference import TokenStats, finalize, gather_target_logits, resolve_vocab_limit
from .support import (
    GPU_BLOCK_COLS,
    GPU_BLOCK_ROWS,
    Problem,
    UnsupportedShapeError,
    gpu_token_stats_reason,
    row_group,
)

DEFAULT_BLOCK_ROWS = GPU_BLOCK_ROWS  # one warpgroup in the WGMMA register layout
DEFAULT_BLOCK_COLS = GPU_BLOCK_COLS  # 272 / 544 bytes per row: conflict-free loads (see above)
DEFAULT_NUM_BUFFERS = 4


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


def padded_rows(rows: int) -> int:
    """Length of the small per-row arrays: rounded up so that their TMA strides are aligned."""
    return -(-rows // 8) * 8


def check_supported(shape, dtype, vocab_limit, *, block_rows, block_cols, interpret) -> None:
    """Raise UnsupportedShapeError naming the constraint this input breaks
    (``support.gpu_token_stats_reason``)."""
    T, V = shape
    reason = gpu_token_stats_reason(Problem(T, V, jnp.dtype(dtype).name, vocab_limit),
                                    block_rows=block_rows, block_cols=block_cols,
                                    interpret=interpret)
    if reason is not None:
        raise UnsupportedShapeError(reason)


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

    def body(zy_gmem, y_gmem, x_gmem, out_gmem, tiles, ready, zy_smem, y_smem, out_smem,
             zy_ready):
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
        plgpu.copy_gmem_to_smem(y_gmem.at[:, pl.ds(r0, bt)], y_smem, zy_ready.at[0])
        for step in range(nbuf):
            fetch(step)
        plgpu.barrier_wait(zy_ready.at[0])

        def segment(seg, _):
            zy = cast(zy_smem.at[seg][...], row_layout)
            y_b = lax.broadcast_in_dim(cast(y_smem.at[seg][...], row_layout), (bt, bv), [0])

            def tile(j, carry):
                step = seg * nv + j
                slot = lax.rem(step, nbuf)
                plgpu.barrier_wait(ready.at[slot])
                x = cast(tiles.at[slot][...], layout).astype(jnp.float32)
                _, _, c0 = tile_start(step)
                col = cast(lax.broadcasted_iota(jnp.int32, (bt, bv), 1), layout) + (c0 - seg * V)
                fresh = (col >= j * bv) & (col < limit)
                counted = fresh & (col != y_b)
                new_carry = fold_tile(carry, x, fresh, counted, zy)

                @pl.when(step + nbuf < n_steps)
                def _():
                    fetch(step + nbuf)

                return new_carry

            init = tuple(cast(a, row_layout) for a in init_carry((bt,), jnp.float32))
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
        plgpu.SMEM((k, bt), jnp.int32),
        plgpu.SMEM((4, k, bt), jnp.float32),
        plgpu.Barrier(num_arrivals=2, num_barriers=1),
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
    to_KxR = lambda a: jnp.pad(a.reshape(rows, k).T, ((0, 0), (0, padded_rows(rows) - rows)))
    out = call(to_KxR(z_y), to_KxR(targets_T),
               logits_TxV.reshape(rows, k * V))
    row_max, sum_exp, n_gt, n_eq = (q[:, :rows].T.reshape(T) for q in out)
    return finalize(z_y, row_max, sum_exp, n_gt.astype(jnp.int32), n_eq.astype(jnp.int32),
                    targets_T, limit)
