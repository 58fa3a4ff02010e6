"""Fused LM head + token statistics on TPU: a Pallas Mosaic TPU kernel.

Grid ``(row blocks, vocabulary blocks)``, vocabulary last ("arbitrary"). Per step one logits tile
``hidden[i] @ head[j].T + bias[j]`` (MXU, float32 accumulation) is rounded to ``logits_dtype``
and folded into the running statistics held in VMEM scratch; the logits never leave VMEM. At the
first vocabulary step the target logits of the row block are computed by dots of the same shape
against the gathered head rows ``head[y]`` and read off the diagonal (``fused_common``).
Edge blocks are padded by Pallas: padded columns are masked, padded rows never written back.
The whole hidden width ``d`` of a block sits in VMEM (``vmem_limit_bytes`` is sized from it).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from jax import lax
from jax.experimental import pallas as pl
from jax.experimental.pallas import tpu as pltpu

from .fold import fold_tile
from .fused_common import (
    diagonal_targets,
    grouped_target_rows,
    prepare_fused,
    target_rows,
    tile_logits,
)
from .reference import finalize
from .token_stats_tpu import fit_block, init_scratch, row_multiple

DEFAULT_BLOCK_ROWS = 256
DEFAULT_BLOCK_COLS = 256


def _kernel(y_ref, h_ref, wy_ref, by_ref, w_ref, b_ref, zy_out, m_out, s_out, gt_out, eq_out,
            zy_sc, m_sc, s_sc, gt_sc, eq_sc, *, limit, block_cols, n_blocks, ldt, precision):
    j = pl.program_id(1)
    h = h_ref[...]

    @pl.when(j == 0)
    def _():
        init_scratch(m_sc, s_sc, gt_sc, eq_sc)
        tiles = [tile_logits(h, wy_ref[g], by_ref[g], ldt, precision)
                 for g in range(wy_ref.shape[0])]
        zy_sc[...] = diagonal_targets(jnp.stack(tiles))[:, None]

    x = tile_logits(h, w_ref[...], b_ref[...], ldt, precision)
    col = j * block_cols + lax.broadcasted_iota(jnp.int32, x.shape, 1)
    fresh = col < limit
    z_y = zy_sc[...]
    carry = (m_sc[...], s_sc[...], gt_sc[...], eq_sc[...])
    carry = fold_tile(carry, x, fresh, fresh & (col != y_ref[...]), z_y)
    for ref, value in zip((m_sc, s_sc, gt_sc, eq_sc), carry):
        ref[...] = value

    @pl.when(j == n_blocks - 1)
    def _():
        zy_out[...] = z_y
        for out, value in zip((m_out, s_out, gt_out, eq_out), carry):
            out[...] = value


def _vmem_bytes(bt, bv, G, d, itemsize):
    inputs = (bt * d + G * bv * d + bv * d) * itemsize
    tiles = (G + 3) * bt * bv * 4
    return 2 * inputs + tiles


@functools.partial(
    jax.jit,
    static_argnames=("vocab_limit", "logits_dtype", "block_rows", "block_cols", "precision",
                     "interpret", "return_lse"),
)
def fused_token_stats_tpu(hidden_TxD, head_VxD, targets_T, bias_V=None, *, vocab_limit=None,
                          logits_dtype=None, block_rows=DEFAULT_BLOCK_ROWS,
                          block_cols=DEFAULT_BLOCK_COLS, precision=None, interpret=False,
                          return_lse=False):
    """Fused token statistics with the Mosaic TPU kernel (same contract as
    ``fused.fused_token_stats_xla``)."""
    T, D = hidden_TxD.shape
    V = head_VxD.shape[0]
    limit, ldt, bias_V, targets_T = prepare_fused(hidden_TxD, head_VxD, targets_T, bias_V,
                                                vocab_limit, logits_dtype)
    bt = fit_block(block_rows, T, row_multiple(hidden_TxD.dtype))
    bv = fit_block(block_cols, V, 128)
    n_rows, n_blocks = pl.cdiv(T, bt), pl.cdiv(limit, bv)
    G = pl.cdiv(bt, bv)

    # Target head rows per row block, in G zero-padded groups of bv rows: [n_rows, G, bv, D].
    wy, by = target_rows(head_VxD, bias_V, targets_T, limit)
    wy_g = grouped_target_rows(wy, bt, bv)
    by_g = grouped_target_rows(by, bt, bv).reshape(n_rows, G, 1, bv)

    kernel = functools.partial(_kernel, limit=limit, block_cols=bv, n_blocks=n_blocks, ldt=ldt,
                               precision=precision)
    row = lambda i, j: (i, 0)
    out_specs = [pl.BlockSpec((bt, 1), row) for _ in range(5)]
    f32, i32 = jnp.float32, jnp.int32
    vmem = _vmem_bytes(bt, bv, G, D, hidden_TxD.dtype.itemsize)
    z_y, row_max, sum_exp, n_gt, n_eq = pl.pallas_call(
        kernel,
        grid=(n_rows, n_blocks),
        in_specs=[
            pl.BlockSpec((bt, 1), row),
            pl.BlockSpec((bt, D), row),
            pl.BlockSpec((None, G, bv, D), lambda i, j: (i, 0, 0, 0)),
            pl.BlockSpec((None, G, 1, bv), lambda i, j: (i, 0, 0, 0)),
            pl.BlockSpec((bv, D), lambda i, j: (j, 0)),
            pl.BlockSpec((1, bv), lambda i, j: (0, j)),
        ],
        out_specs=out_specs,
        out_shape=[jax.ShapeDtypeStruct((T, 1), d) for d in (f32, f32, f32, i32, i32)],
        scratch_shapes=[pltpu.VMEM((bt, 1), d) for d in (f32, f32, f32, i32, i32)],
        compiler_params=pltpu.CompilerParams(
            dimension_semantics=("parallel", "arbitrary"),
            vmem_limit_bytes=int(min(max(32 << 20, vmem + (8 << 20)), 100 << 20)),
        ),
        interpret=interpret,
        name="rce_fused_token_stats",
    )(targets_T[:, None], hidden_TxD, wy_g, by_g, head_VxD, bias_V[None, :])
    z_y, row_max, sum_exp = z_y[:, 0], row_max[:, 0], sum_exp[:, 0]
    out = finalize(z_y, row_max, sum_exp, n_gt[:, 0], n_eq[:, 0], targets_T, limit)
    if return_lse:
        return out, row_max + jnp.log(sum_exp)
    return out
