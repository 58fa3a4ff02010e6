"""Pieces shared by every fused (LM head + token statistics) implementation.

The fused paths compute logits tile by tile, ``tile = hidden_blk @ head_blk.T`` (float32
accumulation) ``+ bias``, rounded once to ``logits_dtype`` and upcast again: exactly the logits a
model would materialise at that precision, without ever writing them.

The target logit must be bit-identical to the target's entry in its tile, or its rank could be
off by one (the target counted as "greater" than itself) and ties with its neighbours could be
missed. Matrix units (and XLA's CPU dot) compute every entry of a dot of a given shape the same
way whatever its position, but dots of different shapes can round differently. So the target
logits of a row block are taken from dots of *the same shape as the tiles*: ``hidden_blk`` times
the gathered head rows ``head[y]`` of that block (in groups of ``block_cols`` rows, zero-padded),
and read off the diagonal. This costs ``block_rows / V`` of the main matmul. The counts skip the
target's own column (``fold.py``'s tie convention), so that even a backend that broke the
position invariance could not count the target against itself.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax import lax

DOT_DIMS = (((1,), (1,)), ((), ()))


def tile_logits(hidden_BxD, head_CxD, bias_1xC, logits_dtype, precision=None):
    """One [B, C] tile of logits: float32-accumulated dot plus bias ([1, C]), rounded to
    ``logits_dtype``, returned in float32."""
    acc = lax.dot_general(
        hidden_BxD, head_CxD, DOT_DIMS, precision=precision, preferred_element_type=jnp.float32
    )
    acc = acc + bias_1xC.astype(jnp.float32)
    return acc.astype(logits_dtype).astype(jnp.float32)


def target_rows(head_VxD, bias_V, targets_T, vocab_limit):
    """``head[y]`` [T, D] and ``bias[y]`` [T] (float32), zeros where the target is out of range."""
    ok = (targets_T >= 0) & (targets_T < vocab_limit)
    safe = jnp.where(ok, targets_T, 0)
    wy = jnp.where(ok[:, None], head_VxD[safe], jnp.zeros((), head_VxD.dtype))
    by = jnp.where(ok, bias_V.astype(jnp.float32)[safe], 0.0)
    return wy, by


def group_block_rows(x_BxK, block_cols):
    """Zero-pad the rows of one row block (``[B, ...]``) to a multiple of ``block_cols`` and split
    them into ``[G, block_cols, ...]``: row r goes to (r // block_cols, r % block_cols)."""
    B = x_BxK.shape[0]
    G = -(-B // block_cols)
    pad = [(0, G * block_cols - B)] + [(0, 0)] * (x_BxK.ndim - 1)
    return jnp.pad(x_BxK, pad).reshape(G, block_cols, *x_BxK.shape[1:])


def diagonal_targets(tiles_GxBxC):
    """The target logits of a row block from its G target tiles: row r sits in tile r // C,
    column r % C. Exact (one entry per row is selected, the rest are zeros)."""
    G, B, C = tiles_GxBxC.shape
    r = lax.broadcasted_iota(jnp.int32, (B, C), 0)
    c = lax.broadcasted_iota(jnp.int32, (B, C), 1)
    z = jnp.zeros((B,), jnp.float32)
    for g in range(G):
        z = z + jnp.sum(jnp.where(r == g * C + c, tiles_GxBxC[g], 0.0), axis=1)
    return z


def grouped_target_rows(a_TxK, block_rows, block_cols):
    """The target rows of every row block, grouped for the target tiles: ``a_TxK`` (``[T, ...]``)
    zero-padded to whole blocks of ``block_rows`` rows, each block split by ``group_block_rows``:
    ``[n_blocks, G, block_cols, ...]`` (the Pallas kernels read one block's groups per program)."""
    T = a_TxK.shape[0]
    n = -(-T // block_rows)
    pad = [(0, n * block_rows - T)] + [(0, 0)] * (a_TxK.ndim - 1)
    blocks = jnp.pad(a_TxK, pad).reshape(n, block_rows, *a_TxK.shape[1:])
    return jax.vmap(lambda b: group_block_rows(b, block_cols))(blocks)


def resolve_logits_dtype(hidden_dtype, logits_dtype):
    dt = jnp.dtype(hidden_dtype if logits_dtype is None else logits_dtype)
    if not jnp.issubdtype(dt, jnp.floating):
        raise ValueError(f"logits_dtype must be a floating type, got {dt}")
    return dt


def prepare_fused(hidden_TxD, head_VxD, targets_T, bias_V, vocab_limit, logits_dtype):
    """Checked inputs of every fused path: ``(limit, logits dtype, bias float32 [V], targets
    int32)``; a missing bias is zeros."""
    from .reference import resolve_vocab_limit

    check_fused_inputs(hidden_TxD, head_VxD, targets_T, bias_V)
    V = head_VxD.shape[0]
    limit = resolve_vocab_limit(V, vocab_limit)
    ldt = resolve_logits_dtype(hidden_TxD.dtype, logits_dtype)
    bias_V = jnp.zeros((V,), jnp.float32) if bias_V is None else bias_V.astype(jnp.float32)
    return limit, ldt, bias_V, targets_T.astype(jnp.int32)


def check_fused_inputs(hidden_TxD, head_VxD, targets_T, bias_V):
    if hidden_TxD.ndim != 2 or head_VxD.ndim != 2:
        raise ValueError(
            f"hidden must be [T, d] and head [V, d]; got {hidden_TxD.shape} and {head_VxD.shape}"
        )
    if hidden_TxD.shape[1] != head_VxD.shape[1]:
        raise ValueError(
            f"hidden width {hidden_TxD.shape[1]} does not match head width {head_VxD.shape[1]}"
        )
    if targets_T.shape != hidden_TxD.shape[:1]:
        raise ValueError(
            f"targets shape {targets_T.shape} does not match hidden {hidden_TxD.shape}"
        )
    if bias_V is not None and bias_V.shape != head_VxD.shape[:1]:
        raise ValueError(f"bias shape {bias_V.shape} does not match head {head_VxD.shape}")
