"""Backward of a per-token weighted cross-entropy through the LM head, without [T, V] logits.

For logits ``z = round(hidden @ head.T + bias)`` (as in ``fused_common.tile_logits``) and a loss
whose gradient with respect to row t of the logits is

    G[t] = weight[t] * (softmax(z[t]) - onehot(y[t]))       (softmax over the first vocab_limit)

(cross-entropy: weight = 1/N; the rce proxy loss: docs/design.md#2-the-proxy-loss), this returns

    d_hidden = G @ head,   d_head = G.T @ hidden,   d_bias = G.sum(0)

recomputing the logits tile by tile from the forward's per-row log-sum-exp. G is rounded to
``logits_dtype`` (what autodiff of materialised logits of that dtype does); the head and bias
gradients are accumulated in float32. Loops: row blocks outside, vocabulary tiles inside; the
last row block and the last tile are clamped to end inside the arrays and the rows/columns they
share with the previous one get zero weight, so nothing is padded or counted twice.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from jax import lax

from .fused_common import prepare_fused, tile_logits

DEFAULT_BLOCK_ROWS = 1024
DEFAULT_BLOCK_COLS = 2048


def _dot_f32(a, b, dims, precision):
    return lax.dot_general(a, b, dims, precision=precision, preferred_element_type=jnp.float32)


@functools.partial(
    jax.jit,
    static_argnames=("vocab_limit", "logits_dtype", "block_rows", "block_cols", "precision"),
)
def fused_logits_backward_xla(hidden_TxD, head_VxD, bias_V, targets_T, lse_T, weight_T, *,
                              vocab_limit=None, logits_dtype=None, block_rows=DEFAULT_BLOCK_ROWS,
                              block_cols=DEFAULT_BLOCK_COLS, precision=None):
    """``(d_hidden [T, D] in the hidden dtype, d_head [V, D] float32, d_bias [V] float32)`` for
    the gradient G described in the module docstring. ``bias_V`` may be None (no bias)."""
    T, D = hidden_TxD.shape
    V = head_VxD.shape[0]
    limit, ldt, bias, targets_T = prepare_fused(hidden_TxD, head_VxD, targets_T, bias_V,
                                                vocab_limit, logits_dtype)
    B = min(block_rows, T)
    C = min(block_cols, limit)
    n_rows, n_cols = -(-T // B), -(-limit // C)

    def row_block(i, carry):
        d_hidden, d_head, d_bias = carry
        r0 = jnp.minimum(i * B, T - B)
        piece = lambda a: lax.dynamic_slice_in_dim(a, r0, B)
        h, y, lse = piece(hidden_TxD), piece(targets_T), piece(lse_T)
        # Rows shared with the previous block: their d_hidden rows are rewritten with the same
        # values, but they must not add to the head and bias gradients a second time.
        fresh_row = ((r0 + jnp.arange(B)) >= i * B)[:, None]
        w = piece(weight_T).astype(jnp.float32)[:, None]

        def tile(j, inner):
            dh, d_head, d_bias = inner
            c0 = jnp.minimum(j * C, limit - C)
            w_c = lax.dynamic_slice_in_dim(head_VxD, c0, C)
            x = tile_logits(h, w_c, lax.dynamic_slice_in_dim(bias, c0, C)[None, :], ldt, precision)
            col = c0 + lax.broadcasted_iota(jnp.int32, (B, C), 1)
            fresh = col >= j * C
            p = jnp.where(fresh, jnp.exp(x - lse[:, None]), 0.0)
            # Rows of weight 0 (masked) contribute exactly 0, even where their logits
            # overflow (0 * NaN would otherwise reach every head and bias gradient).
            g = jnp.where(w != 0, w * (p - (fresh & (col == y[:, None]))), 0.0).astype(ldt)
            dh = dh + _dot_f32(g, w_c, (((1,), (0,)), ((), ())), precision)
            g = jnp.where(fresh_row, g, jnp.zeros((), g.dtype))
            dw = _dot_f32(g, h, (((0,), (0,)), ((), ())), precision)
            d_head = lax.dynamic_update_slice_in_dim(
                d_head, lax.dynamic_slice_in_dim(d_head, c0, C) + dw, c0, 0
            )
            db = jnp.sum(g.astype(jnp.float32), axis=0)
            d_bias = lax.dynamic_update_slice_in_dim(
                d_bias, lax.dynamic_slice_in_dim(d_bias, c0, C) + db, c0, 0
            )
            return dh, d_head, d_bias

        dh, d_head, d_bias = lax.fori_loop(
            0, n_cols, tile, (jnp.zeros((B, D), jnp.float32), d_head, d_bias)
        )
        d_hidden = lax.dynamic_update_slice_in_dim(d_hidden, dh.astype(d_hidden.dtype), r0, 0)
        return d_hidden, d_head, d_bias

    init = (
        jnp.zeros((T, D), hidden_TxD.dtype),
        jnp.zeros((V, D), jnp.float32),
        jnp.zeros((V,), jnp.float32),
    )
    return lax.fori_loop(0, n_rows, row_block, init)

