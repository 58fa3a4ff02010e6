"""Pure-JAX token statistics: the reference that every kernel must match.

For each row t of ``logits_TxV`` with target ``y = targets_T[t]``:

* ``logp[t]``  = z[y] - logsumexp(z), computed in float32 (float64 for float64 input);
* ``rank[t]``  = #{v : z[v] > z[y]}  (strictly greater: ties count in the target's favour);
* ``ties[t]``  = #{v != y : z[v] == z[y]}.

Comparisons are made on the logits as given (an upcast from bf16/f16 to f32 is exact and
order-preserving, so ranking the upcast values is ranking the given ones).

Invalid rows are flagged rather than raised on, so the functions stay jit-compatible:
a target outside ``[0, vocab_limit)`` gives ``rank = ties = -1`` and ``logp = NaN``; NaN or
+inf anywhere in the ranked part of a row gives ``logp = NaN`` and ``rank = ties = -1``.
A target logit of -inf gives ``logp = -inf`` with a valid rank. Callers that need errors
(``rce_jax.token_stats``, ``rce_jax.RankStats``) turn these flags into exceptions.

``vocab_limit`` restricts both the softmax and the ranking to the first ``vocab_limit``
entries (the tokenizer's vocabulary inside a padded embedding matrix).
"""

from __future__ import annotations

import functools
import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax import lax

from .fold import fold_tile, init_carry

# Vocabulary columns per step of the streaming pass. The pass never holds more than a
# [T, DEFAULT_CHUNK] float32 block of upcast logits; measured peaks in
# docs/measurements.md#scratch-memory-of-the-pure-jax-paths.
DEFAULT_CHUNK = 4096


class TokenStats(NamedTuple):
    """Per-token outputs of every token-stats implementation."""

    logp: jax.Array  # [T] float32: log-probability of the target
    rank: jax.Array  # [T] int32: entries strictly greater than the target (-1: invalid row)
    ties: jax.Array  # [T] int32: other entries equal to the target (-1: invalid row)


def compute_dtype(dtype) -> jnp.dtype:
    """float32 for bf16/f16/f32 logits, float64 for float64 logits."""
    return jnp.promote_types(dtype, jnp.float32)


def resolve_vocab_limit(vocab_size: int, vocab_limit: int | None) -> int:
    if vocab_limit is None:
        return vocab_size
    if not 1 <= vocab_limit <= vocab_size:
        raise ValueError(
            f"vocab_limit={vocab_limit} must lie in [1, {vocab_size}] (the logits' last dimension)"
        )
    return vocab_limit


def finalize(z_y, row_max, sum_exp, n_greater, n_equal, targets_T, vocab_limit):
    """Shared epilogue: log-probability and the invalid-row flags (one place for every impl).

    ``n_equal`` counts the entries equal to the target logit other than the target itself
    (``fold.py``'s one tie convention), so ``ties = n_equal``.
    """
    valid_target = (targets_T >= 0) & (targets_T < vocab_limit)
    lse = row_max + jnp.log(sum_exp)
    logp = (z_y - lse).astype(jnp.float32)
    bad = ~valid_target | jnp.isnan(logp)
    logp = jnp.where(valid_target, logp, jnp.nan)
    rank = jnp.where(bad, -1, n_greater).astype(jnp.int32)
    ties = jnp.where(bad, -1, n_equal).astype(jnp.int32)
    return TokenStats(logp, rank, ties)


def gather_target_logits(logits_TxV, targets_T, vocab_limit):
    """z[y] read straight from each row (exact), in the compute dtype; 0 for invalid targets."""
    valid = (targets_T >= 0) & (targets_T < vocab_limit)
    safe = jnp.where(valid, targets_T, 0).astype(jnp.int32)
    z_y = jnp.take_along_axis(logits_TxV, safe[:, None], axis=1)[:, 0]
    return z_y.astype(compute_dtype(logits_TxV.dtype))


def as_sliceable(logits):
    """The array a streaming loop slices: bf16 logits as their raw uint16 bits, others as is.

    XLA's CPU backend rewrites bf16 data movement to float32 over whole arrays and hoists that
    conversion of the loop-invariant logits out of the loop, building exactly the full-size
    float32 copy that streaming exists to avoid. Integer bits are left alone (on CPU the bit
    view costs one bf16-sized copy, docs/measurements.md#scratch-memory-of-the-pure-jax-paths),
    and ``upcast`` turns each sliced block into float32 exactly: a bf16 value is the top half of
    its float32.
    """
    if logits.dtype == jnp.bfloat16:
        return lax.bitcast_convert_type(logits, jnp.uint16)
    return logits


def upcast(block, dtype):
    """A block sliced from ``as_sliceable(logits)``, in the compute dtype of ``dtype`` logits."""
    if dtype == jnp.bfloat16:
        return lax.bitcast_convert_type(block.astype(jnp.uint32) << 16, jnp.float32)
    return block.astype(compute_dtype(dtype))


@functools.partial(jax.jit, static_argnames=("vocab_limit", "chunk"))
def token_stats_xla(logits_TxV, targets_T, *, vocab_limit=None, chunk=DEFAULT_CHUNK):
    """Streaming pure-JAX token statistics (one pass over the vocabulary in chunks).

    Memory: a [T, chunk] block in the compute dtype at a time, never a full-size upcast copy.
    """
    T, V = logits_TxV.shape
    limit = resolve_vocab_limit(V, vocab_limit)
    width = min(chunk, limit)
    n_chunks = math.ceil(limit / width)
    cdt = compute_dtype(logits_TxV.dtype)
    targets_T = targets_T.astype(jnp.int32)
    z_y = gather_target_logits(logits_TxV, targets_T, limit)
    source = as_sliceable(logits_TxV)

    def body(i, carry):
        # The last chunk is clamped to end at `limit`; columns an earlier chunk already
        # covered are not fresh, so V needs no padding (and no copy).
        start = jnp.minimum(i * width, limit - width)
        block = upcast(lax.dynamic_slice_in_dim(source, start, width, axis=1), logits_TxV.dtype)
        col = start + lax.broadcasted_iota(jnp.int32, (T, width), 1)
        fresh = col >= i * width
        return fold_tile(carry, block, fresh, fresh & (col != targets_T[:, None]), z_y)

    carry = lax.fori_loop(0, n_chunks, body, init_carry((T,), dtype=cdt))
    row_max, sum_exp, n_greater, n_equal = carry
    return finalize(z_y, row_max, sum_exp, n_greater, n_equal, targets_T, limit)


@functools.partial(jax.jit, static_argnames=("vocab_limit",))
def token_stats_naive(logits_TxV, targets_T, *, vocab_limit=None):
    """The obvious jnp version (log_softmax + take + (z > z_y).sum), for benchmarks and as a
    second reference. It materialises a full-size upcast copy of the logits."""
    T, V = logits_TxV.shape
    limit = resolve_vocab_limit(V, vocab_limit)
    z = logits_TxV[:, :limit].astype(compute_dtype(logits_TxV.dtype))
    targets_T = targets_T.astype(jnp.int32)
    z_y = gather_target_logits(logits_TxV, targets_T, limit)
    row_max = jnp.max(z, axis=1)
    shift = jnp.where(row_max == -jnp.inf, 0.0, row_max)
    sum_exp = jnp.sum(jnp.exp(z - shift[:, None]), axis=1)
    other = jnp.arange(limit)[None, :] != targets_T[:, None]  # fold.py's tie convention
    n_greater = jnp.sum(z > z_y[:, None], axis=1, dtype=jnp.int32)
    n_equal = jnp.sum(other & (z == z_y[:, None]), axis=1, dtype=jnp.int32)
    return finalize(z_y, row_max, sum_exp, n_greater, n_equal, targets_T, limit)
