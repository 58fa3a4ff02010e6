"""Token statistics on TPU: a Pallas Mosaic TPU kernel.

Grid ``(row blocks, vocabulary blocks)``; the vocabulary is the reduction ("arbitrary") axis and
the running max, rescaled sum of exponentials and the two counts live in VMEM scratch between its
steps. Blocks are ``(block_rows, block_cols)`` with the (8, 128) tiling (16 rows for 2-byte
types); neither needs to divide T or V: Pallas pads the edge blocks, the padded columns are masked
here and padded rows are never written back; the target's own column is not counted
(``fold.py``). The target logit is gathered by XLA beforehand
(exact) and the shared epilogue ``reference.finalize`` produces ``(logp, rank, ties)``.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from jax import lax
from jax.experimental import pallas as pl
from jax.experimental.pallas import tpu as pltpu

from .fold import fold_tile
from .reference import TokenStats, finalize, gather_target_logits, resolve_vocab_limit

DEFAULT_BLOCK_ROWS = 256
DEFAULT_BLOCK_COLS = 2048


def fit_block(block: int, size: int, multiple: int) -> int:
    """``block`` if the array is larger (it must then be a multiple of ``multiple``), else the
    whole dimension (always a legal block)."""
    if size <= block:
        return size
    if block % multiple:
        raise ValueError(f"block size {block} must be a multiple of {multiple}")
    return block


def row_multiple(dtype) -> int:
    return 8 * max(1, 4 // jnp.dtype(dtype).itemsize)


def init_scratch(m_ref, s_ref, gt_ref, eq_ref):
    m_ref[...] = jnp.full(m_ref.shape, -jnp.inf, jnp.float32)
    s_ref[...] = jnp.zeros(s_ref.shape, jnp.float32)
    gt_ref[...] = jnp.zeros(gt_ref.shape, jnp.int32)
    eq_ref[...] = jnp.zeros(eq_ref.shape, jnp.int32)


def _kernel(zy_ref, y_ref, x_ref, m_out, s_out, gt_out, eq_out, m_sc, s_sc, gt_sc, eq_sc, *, limit,
            block_cols, n_blocks):
    j = pl.program_id(1)

    @pl.when(j == 0)
    def _():
        init_scratch(m_sc, s_sc, gt_sc, eq_sc)

    x = x_ref[...].astype(jnp.float32)
    col = j * block_cols + lax.broadcasted_iota(jnp.int32, x.shape, 1)
    carry = (m_sc[...], s_sc[...], gt_sc[...], eq_sc[...])
    fresh = col < limit
    carry = fold_tile(carry, x, fresh, fresh & (col != y_ref[...]), zy_ref[...])
    for ref, value in zip((m_sc, s_sc, gt_sc, eq_sc), carry):
        ref[...] = value

    @pl.when(j == n_blocks - 1)
    def _():
        for out, value in zip((m_out, s_out, gt_out, eq_out), carry):
            out[...] = value


@functools.partial(
    jax.jit, static_argnames=("vocab_limit", "block_rows", "block_cols", "interpret")
)
def token_stats_tpu(logits_TxV, targets_T, *, vocab_limit=None, block_rows=DEFAULT_BLOCK_ROWS,
                    block_cols=DEFAULT_BLOCK_COLS, interpret=False) -> TokenStats:
    """Token statistics of ``logits_TxV`` with the Mosaic TPU kernel (semantics: reference.py)."""
    T, V = logits_TxV.shape
    limit = resolve_vocab_limit(V, vocab_limit)
    bt = fit_block(block_rows, T, row_multiple(logits_TxV.dtype))
    bv = fit_block(block_cols, V, 128)
    n_blocks = pl.cdiv(limit, bv)
    targets_T = targets_T.astype(jnp.int32)
    z_y = gather_target_logits(logits_TxV, targets_T, limit).astype(jnp.float32)
    kernel = functools.partial(_kernel, limit=limit, block_cols=bv, n_blocks=n_blocks)
    f32, i32 = jnp.float32, jnp.int32
    row_max, sum_exp, n_gt, n_eq = pl.pallas_call(
        kernel,
        grid=(pl.cdiv(T, bt), n_blocks),
        in_specs=[
            pl.BlockSpec((bt, 1), lambda i, j: (i, 0)),
            pl.BlockSpec((bt, 1), lambda i, j: (i, 0)),
            pl.BlockSpec((bt, bv), lambda i, j: (i, j)),
        ],
        out_specs=[pl.BlockSpec((bt, 1), lambda i, j: (i, 0)) for _ in range(4)],
        out_shape=[jax.ShapeDtypeStruct((T, 1), d) for d in (f32, f32, i32, i32)],
        scratch_shapes=[pltpu.VMEM((bt, 1), d) for d in (f32, f32, i32, i32)],
        compiler_params=pltpu.CompilerParams(dimension_semantics=("parallel", "arbitrary")),
        interpret=interpret,
        name="rce_token_stats",
    )(z_y[:, None], targets_T[:, None], logits_TxV)
    return finalize(z_y, row_max[:, 0], sum_exp[:, 0], n_gt[:, 0], n_eq[:, 0], targets_T, limit)
