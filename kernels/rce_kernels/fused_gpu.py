"""Fused LM head + token statistics on GPU: a Pallas Mosaic GPU kernel (Hopper WGMMA).

Each program (one warpgroup) owns ``block_rows = 64`` rows. It walks over ``G`` target tiles and
then over the vocabulary tiles of ``block_cols`` columns; every tile is a WGMMA accumulation
over the hidden width in chunks of ``block_k``, fed by a ring of ``num_buffers`` TMA stages (the
hidden chunk and the head chunk of each step). The float32 accumulator gets the bias, is rounded
to ``logits_dtype`` and folded into the row statistics in registers by ``fold.fold_tile`` (the
reference's update; the target's own column is not counted); the logits never reach
global memory. The target tiles multiply the row block by its gathered head rows ``head[y]``
(same shapes, same instructions as the vocabulary tiles) and give the target logits from their
diagonal (``fused_common``).

Operands are 16-bit (bf16/f16; WGMMA has no full-precision f32 path). To keep every TMA copy in
bounds and tile-aligned, the wrapper zero-pads hidden to a multiple of 64 rows, the head to a
multiple of ``block_cols`` rows and both to a multiple of ``block_k`` columns when needed (copies
of the inputs, never of the logits); padded columns are masked, padded rows dropped.
``interpret=True`` runs the kernel body in Pallas' GPU interpret mode.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from jax import lax
from jax.experimental import pallas as pl
from jax.experimental.pallas import mosaic_gpu as plgpu

from .fold import fold_tile, init_carry
from .fused_common import grouped_target_rows, prepare_fused, target_rows
from .reference import finalize
from .support import (
    GPU_BLOCK_ROWS,
    GPU_FUSED_BLOCK_COLS,
    Problem,
    UnsupportedShapeError,
    gpu_fused_reason,
)
from .token_stats_gpu import interpret_params

BLOCK_ROWS = GPU_BLOCK_ROWS  # one warpgroup in the WGMMA register layout
DEFAULT_BLOCK_COLS = GPU_FUSED_BLOCK_COLS
BLOCK_K = 64
DEFAULT_NUM_BUFFERS = 4
# The 0.10 GPU interpreter cannot read a transposed shared-memory ref in wgmma, so interpret mode
# copies the head tile transposed into a scratch buffer there; JAX 0.12's interpreter runs the
# device line (docs/kernels.md#test-runs-2026-12-02-2-core-cpu-shared-with-four-other-helpers-test-suites:
# the materialised path's statistics on JAX 0.12.0.1; 0.11 not checked, so it keeps the copy).
INTERPRETER_READS_TRANSPOSED_REFS = jax.__version_info__ >= (0, 12)


def check_supported(hidden_dtype, head_dtype, vocab_size, *, block_cols) -> None:
    """Raise UnsupportedShapeError naming the constraint broken (``support.gpu_fused_reason``)."""
    problem = Problem(0, vocab_size, jnp.dtype(hidden_dtype).name, None, 0,
                      jnp.dtype(head_dtype).name)
    reason = gpu_fused_reason(problem, block_cols=block_cols)
    if reason is not None:
        raise UnsupportedShapeError(reason)


def _pad_to(a, axis, multiple):
    extra = -a.shape[axis] % multiple
    if not extra:
        return a
    pad = [(0, 0)] * a.ndim
    pad[axis] = (0, extra)
    return jnp.pad(a, pad)


def _build(T_pad, V_pad, D_pad, G, limit, dtype, ldt, *, block_cols, num_buffers, interpret):
    bt, bv, bk = BLOCK_ROWS, block_cols, BLOCK_K
    nk = D_pad // bk
    nv = pl.cdiv(limit, bv)
    n_steps = (G + nv) * nk
    nbuf = min(num_buffers, n_steps)
    layout, rows_l, cols_l = (plgpu.Layout.WGMMA, plgpu.Layout.WGMMA.reduce(1),
                              plgpu.Layout.WGMMA.reduce(0))
    swizzle = 128
    transforms = (plgpu.TilingTransform((8, swizzle // jnp.dtype(dtype).itemsize)),
                  plgpu.SwizzleTransform(swizzle))

    def cast(x, lay):
        return x if interpret else plgpu.layout_cast(x, lay)

    def body(y_gmem, h_gmem, wy_gmem, by_gmem, w_gmem, b_gmem, out_gmem,
             h_s, w_s, ready, b_s, b_ready, y_s, out_s, y_ready, *interpret_scratch):
        i = lax.axis_index("rows")
        r0 = i * bt

        def fetch(step):
            t, kk = step // nk, step % nk
            slot = lax.rem(step, nbuf)
            cols = pl.ds(kk * bk, bk)
            plgpu.copy_gmem_to_smem(h_gmem.at[pl.ds(r0, bt), cols], h_s.at[slot], ready.at[slot])

            @pl.when(t < G)
            def _():
                plgpu.copy_gmem_to_smem(wy_gmem.at[i, t, :, cols], w_s.at[slot], ready.at[slot])

            @pl.when(t >= G)
            def _():
                rows = pl.ds((t - G) * bv, bv)
                plgpu.copy_gmem_to_smem(w_gmem.at[rows, cols], w_s.at[slot], ready.at[slot])

        def fetch_bias(t):
            @pl.when(t < G)
            def _():
                plgpu.copy_gmem_to_smem(by_gmem.at[i, t], b_s, b_ready.at[0])

            @pl.when(t >= G)
            def _():
                plgpu.copy_gmem_to_smem(b_gmem.at[pl.ds((t - G) * bv, bv)], b_s, b_ready.at[0])

        def tile_logits(t):
            """The [bt, bv] float32 logits of tile t, rounded through ``ldt``."""
            fetch_bias(t)

            def accumulate(acc_ref):
                def k_step(kk, _):
                    step = t * nk + kk
                    slot = lax.rem(step, nbuf)
                    plgpu.barrier_wait(ready.at[slot])
                    if interpret and not INTERPRETER_READS_TRANSPOSED_REFS:
                        (w_t,) = interpret_scratch
                        w_t[...] = w_s.at[slot][...].T
                    else:
                        w_t = w_s.at[slot].transpose((1, 0))
                    plgpu.wgmma(acc_ref, h_s.at[slot], w_t)
                    plgpu.wgmma_wait(1)  # the previous step's operands are free again

                    @pl.when((step >= 1) & (step - 1 + nbuf < n_steps))
                    def _():
                        fetch(step - 1 + nbuf)

                    return 0

                lax.fori_loop(0, nk, k_step, 0)
                return acc_ref[...]

            acc = pl.run_scoped(accumulate, plgpu.ACC((bt, bv), jnp.float32))
            plgpu.barrier_wait(b_ready.at[0])
            bias = cast(b_s[...], cols_l)
            x = acc + lax.broadcast_in_dim(bias, (bt, bv), [1])
            return x.astype(ldt).astype(jnp.float32)

        plgpu.copy_gmem_to_smem(y_gmem.at[pl.ds(r0, bt)], y_s, y_ready.at[0])
        for step in range(nbuf):
            fetch(step)
        plgpu.barrier_wait(y_ready.at[0])
        y = cast(y_s[...], rows_l)
        row = cast(lax.broadcasted_iota(jnp.int32, (bt, bv), 0), layout)
        col = cast(lax.broadcasted_iota(jnp.int32, (bt, bv), 1), layout)

        def target_tile(g, z_y):
            x = tile_logits(g)
            return z_y + jnp.sum(jnp.where(row == col + g * bv, x, 0.0), axis=1)

        z_y = lax.fori_loop(0, G, target_tile, cast(jnp.zeros((bt,), jnp.float32), rows_l))
        y_b = lax.broadcast_in_dim(y, (bt, bv), [0])

        def vocab_tile(j, carry):
            x = tile_logits(G + j)
            c = col + j * bv
            fresh = c < limit
            return fold_tile(carry, x, fresh, fresh & (c != y_b), z_y)

        init = tuple(cast(a, rows_l) for a in init_carry((bt,), jnp.float32))
        results = (z_y, *lax.fori_loop(0, nv, vocab_tile, init))
        for q, value in enumerate(results):
            out_s.at[q][...] = value
        plgpu.commit_smem()
        plgpu.copy_smem_to_gmem(out_s, out_gmem.at[:, pl.ds(r0, bt)])
        plgpu.wait_smem_to_gmem(0)

    scratch = [
        plgpu.SMEM((nbuf, bt, bk), dtype, transforms=transforms),
        plgpu.SMEM((nbuf, bv, bk), dtype, transforms=transforms),
        plgpu.Barrier(num_arrivals=2, num_barriers=nbuf),
        plgpu.SMEM((bv,), jnp.float32),
        plgpu.Barrier(num_barriers=1),
        plgpu.SMEM((bt,), jnp.int32),
        plgpu.SMEM((5, bt), jnp.float32),
        plgpu.Barrier(num_barriers=1),
    ]
    if interpret and not INTERPRETER_READS_TRANSPOSED_REFS:
        scratch.append(plgpu.SMEM((bk, bv), dtype))
    return plgpu.kernel(
        body,
        out_type=jax.ShapeDtypeStruct((5, T_pad), jnp.float32),
        grid=(T_pad // bt,),
        grid_names=("rows",),
        scratch_types=scratch,
        compiler_params=plgpu.CompilerParams(lowering_semantics=plgpu.LoweringSemantics.Lane),
        interpret=interpret_params() if interpret else None,
    )


@functools.partial(
    jax.jit,
    static_argnames=("vocab_limit", "logits_dtype", "block_cols", "num_buffers", "interpret",
                     "return_lse"),
)
def fused_token_stats_mgpu(hidden_TxD, head_VxD, targets_T, bias_V=None, *, vocab_limit=None,
                           logits_dtype=None, block_cols=DEFAULT_BLOCK_COLS,
                           num_buffers=DEFAULT_NUM_BUFFERS, interpret=False, return_lse=False):
    """Fused token statistics with the Mosaic GPU kernel (same contract as
    ``fused.fused_token_stats_xla``). Raises UnsupportedShapeError for f32 operands."""
    T, D = hidden_TxD.shape
    V = head_VxD.shape[0]
    check_supported(hidden_TxD.dtype, head_VxD.dtype, V, block_cols=block_cols)
    limit, ldt, bias_V, targets_T = prepare_fused(hidden_TxD, head_VxD, targets_T, bias_V,
                                                vocab_limit, logits_dtype)
    bt, bv = BLOCK_ROWS, block_cols
    G = pl.cdiv(bt, bv)

    wy, by = target_rows(head_VxD, bias_V, targets_T, limit)
    h = _pad_to(_pad_to(hidden_TxD, 0, bt), 1, BLOCK_K)
    w = _pad_to(_pad_to(head_VxD, 0, bv), 1, BLOCK_K)
    T_pad, D_pad = h.shape
    wy_g = _pad_to(grouped_target_rows(wy, bt, bv), 3, BLOCK_K)
    by_g = grouped_target_rows(by, bt, bv)
    call = _build(T_pad, w.shape[0], D_pad, G, limit, h.dtype, ldt, block_cols=bv,
                  num_buffers=num_buffers, interpret=interpret)
    out = call(_pad_to(targets_T, 0, bt), h, wy_g, by_g, w, _pad_to(bias_V, 0, bv))[:, :T]
    z_y, row_max, sum_exp, n_gt, n_eq = out
    stats = finalize(z_y, row_max, sum_exp, n_gt.astype(jnp.int32), n_eq.astype(jnp.int32),
                     targets_T, limit)
    if return_lse:
        return stats, row_max + jnp.log(sum_exp)
    return stats
