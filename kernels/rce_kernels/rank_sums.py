"""Device-side per-rank sums of one batch of token statistics (docs/design.md#1-what-is-measured).

The sufficient statistics of the decomposition, per exact rank ``e`` in ``0..V-1``: the number of
scored tokens whose target has that rank and the sum of their log-probabilities, as float32/int32
segment sums of one batch. ``rce_jax.stats`` accumulates them on the host (``RankStats``); the
proxy loss (``proxy_loss``) uses them for its batch terms.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import chex
import jax
import jax.numpy as jnp


class BatchRankSums(NamedTuple):
    """Device-side statistics of one batch (float32 sums, int32 counts)."""

    count_V: jax.Array  # int32 [V]: scored tokens per rank
    sum_logp_V: jax.Array  # float32 [V]: sum of log s per rank
    n_tied: jax.Array  # int32 []: scored tokens whose target logit ties another entry
    n_invalid: jax.Array  # int32 []: scored tokens flagged invalid (NaN/+inf logits, bad target,
    #                     rank >= vocab_size)
    n_neginf: jax.Array  # int32 []: scored tokens whose target logit is -inf (log s = -inf)


@functools.partial(jax.jit, static_argnames=("vocab_size",))
def batch_rank_sums(logp_T, rank_T, ties_T, mask_T, *, vocab_size: int) -> BatchRankSums:
    """Segment sums of one batch of token statistics by exact rank.

    Tokens with ``mask_T`` false are ignored. Scored tokens that are invalid (``rank < 0``, or a
    rank that does not fit ``vocab_size``) or have ``logp = -inf`` are left out of the sums and
    counted in ``n_invalid`` / ``n_neginf`` so that the host can refuse them with a clear error.
    """
    chex.assert_rank(logp_T, 1, custom_message="logp_T [T]", exception_type=ValueError)
    chex.assert_equal_shape([logp_T, rank_T, ties_T, mask_T], exception_type=ValueError,
                            custom_message="logp_T, rank_T, ties_T and mask_T, all [T]")
    chex.assert_type([logp_T, rank_T, ties_T], [float, int, int], exception_type=ValueError,
                     custom_message="logp_T floating point, rank_T and ties_T integers")
    mask_T = mask_T.astype(bool)
    invalid = mask_T & ((rank_T < 0) | (rank_T >= vocab_size))
    neginf = mask_T & ~invalid & (logp_T == -jnp.inf)
    good = mask_T & ~invalid & ~neginf
    segment = jnp.where(good, rank_T, vocab_size).astype(jnp.int32)  # V = the dropped bin
    count = jax.ops.segment_sum(good.astype(jnp.int32), segment, num_segments=vocab_size + 1)
    total = jax.ops.segment_sum(
        jnp.where(good, logp_T, 0.0).astype(jnp.float32), segment, num_segments=vocab_size + 1
    )
    return BatchRankSums(
        count_V=count[:vocab_size],
        sum_logp_V=total[:vocab_size],
        n_tied=jnp.sum(good & (ties_T > 0), dtype=jnp.int32),
        n_invalid=jnp.sum(invalid, dtype=jnp.int32),
        n_neginf=jnp.sum(neginf, dtype=jnp.int32),
    )
