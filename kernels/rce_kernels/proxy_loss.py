"""Custom-VJP cores of the proxy loss ``L = CE + lam * Conf`` (docs/design.md#2-the-proxy-loss).

``ce_conf`` (materialised logits) and ``ce_conf_fused`` (hidden states and LM head) return the
batch's ``(CE, Conf)`` as float32 scalars; ``L = CE + lam * Conf`` is formed by the caller, so
autodiff supplies ``dL/dlam = Conf`` and any combination of cotangents of CE and Conf works.
With N scored tokens, rank e per token (a constant), ``p_e = N_e / N``,
``Q_e = exp(mean log s over rank e)``, ``C = sum_e Q_e``, ``q_e = Q_e / C``:

    dCE/d(log s_i) = -1/N,   dConf/d(log s_i) = q_e / (p_e N)

so the backward is the cross-entropy backward with a per-token weight: for cotangents
``(g_ce, g_conf)``, ``dz_i = w_i (softmax(z_i) - onehot(y_i))`` with
``w_i = (g_ce - g_conf q_e / p_e) / N`` (L: ``g_ce = 1``, ``g_conf = lam``). Forward: one
token-statistics pass; backward: one elementwise pass over the logits, or (fused) the tiled
recomputation of ``fused_backward`` (never a [T, V] buffer). Masked tokens get zero weight.
Inputs are assumed validated (``rce_jax.losses`` does that): targets in range where scored.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

from .dispatch import fused_token_stats, token_stats
from .fused_backward import fused_logits_backward_xla
from .rank_sums import batch_rank_sums
from .reference import gather_target_logits


def batch_terms(logp_T, rank_T, ties_T, mask_T, vocab_size, axis=None):
    """``(CE, Conf, ratio_T = q_e / p_e per token, N as float32)`` of one batch. An all-masked
    batch has CE = Conf = 0. With ``axis`` (inside ``rce_kernels.shard_rows``) the rows are one
    device's share: the per-rank sums, the token count and the log-likelihood sum are
    ``psum``-ed over ``axis``, so every device gets the whole batch's terms."""
    sums = batch_rank_sums(logp_T, rank_T, ties_T, mask_T, vocab_size=vocab_size)
    n = jnp.sum(mask_T, dtype=jnp.int32)
    sum_logp = jnp.sum(jnp.where(mask_T, logp_T, 0.0))
    if axis is not None:
        sums, n, sum_logp = jax.lax.psum((sums, n, sum_logp), axis)
    n_f = jnp.maximum(n, 1).astype(jnp.float32)
    ce = -sum_logp / n_f
    count = sums.count_V.astype(jnp.float32)
    occupied = sums.count_V > 0
    mean_V = jnp.where(occupied, sums.sum_logp_V / jnp.maximum(count, 1.0), -jnp.inf)
    any_token = jnp.any(occupied)
    log_c = jnp.where(any_token, jax.nn.logsumexp(mean_V), 0.0)
    ratio_V = jnp.where(occupied, jnp.exp(mean_V - log_c) * n_f / jnp.maximum(count, 1.0), 0.0)
    ratio_T = jnp.where(mask_T & (rank_T >= 0), ratio_V[jnp.clip(rank_T, 0, vocab_size - 1)], 0.0)
    return ce, log_c, ratio_T, n_f


def _token_weights(g_ce, g_conf, ratio_T, mask_T, n_f):
    return jnp.where(mask_T, (g_ce - g_conf * ratio_T) / n_f, 0.0)


# ---- materialised logits -----------------------------------------------------------------
@functools.partial(jax.custom_vjp, nondiff_argnums=(3, 4, 5))
def ce_conf(logits_TxV, targets_T, mask_T, vocab_limit=None, impl="auto", axis=None):
    """``(CE, Conf)`` of logits [T, V] over the tokens where ``mask_T``; gradient: module doc.
    ``axis``: the mesh axis the rows are split over (inside ``rce_kernels.shard_rows``)."""
    return _ce_conf_fwd(logits_TxV, targets_T, mask_T, vocab_limit, impl, axis)[0]


def _ce_conf_fwd(logits_TxV, targets_T, mask_T, vocab_limit, impl, axis):
    limit = logits_TxV.shape[1] if vocab_limit is None else vocab_limit
    logp, rank, ties = token_stats(logits_TxV, targets_T, vocab_limit=vocab_limit, impl=impl)
    ce, conf, ratio, n_f = batch_terms(logp, rank, ties, mask_T, limit, axis)
    lse = gather_target_logits(logits_TxV, targets_T, limit).astype(jnp.float32) - logp
    return (ce, conf), (logits_TxV, targets_T, mask_T, lse, ratio, n_f)


def _psum_transpose(cotangents, axis):
    """The backward of the forward's hidden ``psum`` over ``axis``: under ``shard_map`` (as
    ``rce_kernels.shard_rows`` calls it) each device receives its share of the replicated
    outputs' cotangent, and the transpose of ``psum`` is ``psum``."""
    return cotangents if axis is None else jax.lax.psum(cotangents, axis)


def _ce_conf_bwd(vocab_limit, impl, axis, res, cotangents):
    del impl
    cotangents = _psum_transpose(cotangents, axis)
    logits_TxV, targets_T, mask_T, lse, ratio, n_f = res
    w = _token_weights(*cotangents, ratio, mask_T, n_f)
    V = logits_TxV.shape[1]
    limit = V if vocab_limit is None else vocab_limit
    col = jnp.arange(V)[None, :]
    g = jnp.exp(logits_TxV.astype(jnp.float32) - lse[:, None]) - (col == targets_T[:, None])
    g = jnp.where(mask_T[:, None] & (col < limit), w[:, None] * g, 0.0)
    return g.astype(logits_TxV.dtype), None, None


ce_conf.defvjp(_ce_conf_fwd, _ce_conf_bwd)


# ---- fused LM head ----------------------------------------------------------------------
@functools.partial(jax.custom_vjp, nondiff_argnums=(5, 6, 7, 8))
def ce_conf_fused(hidden_TxD, head_VxD, bias_V, targets_T, mask_T, vocab_limit=None,
                  logits_dtype=None, impl="auto", axis=None):
    """``(CE, Conf)`` of the logits ``hidden @ head.T + bias`` (``fused_common`` semantics),
    differentiable in hidden, head and bias (head/bias gradients accumulated in float32)."""
    return _ce_conf_fused_fwd(hidden_TxD, head_VxD, bias_V, targets_T, mask_T, vocab_limit,
                              logits_dtype, impl, axis)[0]


def _ce_conf_fused_fwd(hidden_TxD, head_VxD, bias_V, targets_T, mask_T, vocab_limit,
                       logits_dtype, impl, axis):
    limit = head_VxD.shape[0] if vocab_limit is None else vocab_limit
    (logp, rank, ties), lse = fused_token_stats(
        hidden_TxD, head_VxD, targets_T, bias_V=bias_V, vocab_limit=vocab_limit,
        logits_dtype=logits_dtype, impl=impl, return_lse=True,
    )
    ce, conf, ratio, n_f = batch_terms(logp, rank, ties, mask_T, limit, axis)
    return (ce, conf), (hidden_TxD, head_VxD, bias_V, targets_T, mask_T, lse, ratio, n_f)


def _ce_conf_fused_bwd(vocab_limit, logits_dtype, impl, axis, res, cotangents):
    # Head and bias gradients are this device's partial sums; shard_map's transpose adds them
    # up over `axis` for the replicated head (tests: 8 devices give one device's gradients).
    del impl
    cotangents = _psum_transpose(cotangents, axis)
    hidden_TxD, head_VxD, bias_V, targets_T, mask_T, lse, ratio, n_f = res
    w = _token_weights(*cotangents, ratio, mask_T, n_f)
    d_hidden, d_head, d_bias = fused_logits_backward_xla(
        hidden_TxD, head_VxD, bias_V, targets_T, lse, w, vocab_limit=vocab_limit,
        logits_dtype=logits_dtype,
    )
    return d_hidden, d_head.astype(head_VxD.dtype), d_bias.astype(bias_V.dtype), None, None


ce_conf_fused.defvjp(_ce_conf_fused_fwd, _ce_conf_fused_bwd)
