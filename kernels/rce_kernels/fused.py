"""Fused LM head + token statistics, pure JAX: tiles over rows and vocabulary, no [T, V] buffer.

``fused_token_stats_xla`` is the CPU path and the reference of the Pallas fused kernels: a loop
over row blocks of ``block_rows`` rows, and inside it a loop over vocabulary tiles of
``block_cols`` columns, each tile ``(hidden_blk @ head_tile.T + bias)`` rounded to
``logits_dtype`` (see ``fused_common``). Memory: one [block_rows, block_cols] float32 tile at a
time. The last row block and the last vocabulary tile are clamped to end inside the arrays
(rows computed twice get identical values; columns seen twice are masked), so nothing is padded.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from jax import lax

from .fold import fold_tile, init_carry
from .fused_common import (
    diagonal_targets,
    group_block_rows,
    prepare_fused,
    target_rows,
    tile_logits,
)
from .reference import finalize

DEFAULT_BLOCK_ROWS = 1024
DEFAULT_BLOCK_COLS = 2048


def _row_block_stats(h_BxD, y_B, wy_BxD, by_B, head_VxD, bias_V, *, limit, width, ldt, precision):
    """Statistics of one row block: z_y from same-shape target tiles, then a pass over the
    vocabulary. Returns (z_y, row_max, sum_exp, n_greater, n_equal) (``fold.py``'s convention)."""
    B = h_BxD.shape[0]
    wy = group_block_rows(wy_BxD, width)
    by = group_block_rows(by_B, width)
    tiles = [tile_logits(h_BxD, wy[g], by[g][None, :], ldt, precision) for g in range(wy.shape[0])]
    z_y = diagonal_targets(jnp.stack(tiles))[:, None]
    n_tiles = -(-limit // width)

    def tile(j, carry):
        start = jnp.minimum(j * width, limit - width)
        x = tile_logits(
            h_BxD,
            lax.dynamic_slice_in_dim(head_VxD, start, width),
            lax.dynamic_slice_in_dim(bias_V, start, width)[None, :],
            ldt,
            precision,
        )
        col = start + lax.broadcasted_iota(jnp.int32, (B, width), 1)
        fresh = col >= j * width
        return fold_tile(carry, x, fresh, fresh & (col != y_B[:, None]), z_y)

    row_max, sum_exp, n_gt, n_eq = lax.fori_loop(0, n_tiles, tile, init_carry((B, 1)))
    return z_y[:, 0], row_max[:, 0], sum_exp[:, 0], n_gt[:, 0], n_eq[:, 0]


@functools.partial(
    jax.jit,
    static_argnames=("vocab_limit", "logits_dtype", "block_rows", "block_cols", "precision",
                     "return_lse"),
)
def fused_token_stats_xla(hidden_TxD, head_VxD, targets_T, bias_V=None, *, vocab_limit=None,
                          logits_dtype=None, block_rows=DEFAULT_BLOCK_ROWS,
                          block_cols=DEFAULT_BLOCK_COLS, precision=None, return_lse=False):
    """Token statistics of the logits ``hidden @ head.T + bias`` (rounded to ``logits_dtype``,
    default the hidden dtype) without materialising them. Semantics as ``reference.py`` on those
    logits. With ``return_lse`` also the per-row log-sum-exp (float32), for a backward pass."""
    limit, ldt, bias_V, targets_T = prepare_fused(hidden_TxD, head_VxD, targets_T, bias_V,
                                                vocab_limit, logits_dtype)
    T = hidden_TxD.shape[0]
    B = min(block_rows, T)
    width = min(block_cols, limit)
    wy, by = target_rows(head_VxD, bias_V, targets_T, limit)
    stats = functools.partial(_row_block_stats, head_VxD=head_VxD, bias_V=bias_V, limit=limit,
                              width=width, ldt=ldt, precision=precision)

    def row_block(i, outs):
        r0 = jnp.minimum(i * B, T - B)
        piece = lambda a: lax.dynamic_slice_in_dim(a, r0, B)
        new = stats(piece(hidden_TxD), piece(targets_T), piece(wy), piece(by))
        return tuple(lax.dynamic_update_slice_in_dim(o, n, r0, 0) for o, n in zip(outs, new))

    f32, i32 = jnp.zeros((T,), jnp.float32), jnp.zeros((T,), jnp.int32)
    z_y, row_max, sum_exp, n_gt, n_eq = lax.fori_loop(
        0, -(-T // B), row_block, (f32, f32, f32, i32, i32)
    )
    out = finalize(z_y, row_max, sum_exp, n_gt, n_eq, targets_T, limit)
    if return_lse:
        return out, row_max + jnp.log(sum_exp)
    return out
