"""The one streaming update every token-statistics implementation folds its tiles with.

Per row, over the tiles of its vocabulary, four running quantities:

* ``row_max``   the largest logit seen so far (``-inf`` before the first);
* ``sum_exp``   ``sum exp(z - row_max)`` over the entries seen, rescaled whenever the max grows;
* ``n_greater`` entries strictly greater than the target logit ``z_y``;
* ``n_equal``   entries equal to ``z_y`` **other than the target's own column**.

The tie convention is therefore the same everywhere: ``ties = n_equal`` (no ``- 1`` anywhere),
and the target is never compared with itself. For materialised logits this changes nothing (the
target entry equals ``z_y`` and is not greater than it); for the fused kernels it means that
even a matrix unit whose rounding depended on a tile's position could not count the target
against itself.

``fold_tile`` is written on plain ``jnp``/``lax`` operations so that the same function runs in
the pure-JAX reference (``reference.token_stats_xla``, ``fused.fused_token_stats_xla``) and
inside the Pallas kernel bodies (Mosaic TPU, Mosaic GPU). The carry may hold ``[B]`` vectors
(the GPU kernels' row layout) or ``[B, 1]`` columns (TPU VMEM scratch, the XLA loops); counts
may be int32 or float32 (the GPU kernels count in float32: exact below 2**24 entries).
"""

from __future__ import annotations

import jax.numpy as jnp
from jax import lax


def init_carry(shape, count_dtype=jnp.int32, dtype=jnp.float32):
    """``(row_max, sum_exp, n_greater, n_equal)`` before the first tile (``dtype``: float32, or
    float64 for float64 logits)."""
    return (
        jnp.full(shape, -jnp.inf, dtype),
        jnp.zeros(shape, dtype),
        jnp.zeros(shape, count_dtype),
        jnp.zeros(shape, count_dtype),
    )


def _rows(v, shape):
    """A per-row value (``[B]`` or ``[B, 1]``) broadcast to the tile ``shape``."""
    return v if v.ndim == len(shape) else lax.broadcast_in_dim(v, shape, [0])


def fold_tile(carry, x_BxC, fresh_BxC, counted_BxC, z_y):
    """Fold one float32 tile into the running statistics.

    ``fresh_BxC``: the entries this tile contributes to the softmax (inside the vocabulary
    limit and not already seen by an earlier, overlapping tile); ``counted_BxC``: those compared
    with the target logit (``fresh`` minus the target's own column). ``z_y`` has the carry's
    shape. A NaN or ``+inf`` entry poisons the row's sum (``reference.finalize`` flags it); a row
    whose entries so far are all ``-inf`` keeps ``row_max = -inf`` and is shifted by 0, so that
    ``(-inf) - (-inf)`` never makes a NaN.
    """
    row_max, sum_exp, n_gt, n_eq = carry
    keep = row_max.ndim == 2
    shape = x_BxC.shape
    x = jnp.where(fresh_BxC, x_BxC, -jnp.inf)
    new_max = jnp.maximum(row_max, jnp.max(x, axis=1, keepdims=keep))
    shift = jnp.where(new_max == -jnp.inf, 0.0, new_max)
    sum_exp = sum_exp * jnp.exp(row_max - shift) + jnp.sum(
        jnp.exp(x - _rows(shift, shape)), axis=1, keepdims=keep
    )
    z_b = _rows(z_y, shape)
    one = 1.0 if jnp.issubdtype(n_gt.dtype, jnp.floating) else 1  # a literal: no 0-d array
    zero = 0 * one
    n_gt = n_gt + jnp.sum(jnp.where(counted_BxC & (x > z_b), one, zero), axis=1, keepdims=keep)
    n_eq = n_eq + jnp.sum(jnp.where(counted_BxC & (x == z_b), one, zero), axis=1, keepdims=keep)
    return new_max, sum_exp, n_gt, n_eq
