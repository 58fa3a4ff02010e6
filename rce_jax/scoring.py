"""Public entry points on materialised logits: ``token_stats`` and the one-shot ``decompose``."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import rce_kernels
from rce_kernels.reference import resolve_vocab_limit

from .decomposition import Decomposition
from .stats import TIE_RULE, RankStats

TokenStats = rce_kernels.TokenStats


def _is_concrete(x) -> bool:
    return not isinstance(x, jax.core.Tracer)


def _check_inputs(logits, targets):
    if logits.ndim < 2:
        raise ValueError(f"logits must be [T, V] or [B, L, V]; got shape {logits.shape}")
    if not jnp.issubdtype(logits.dtype, jnp.floating):
        raise ValueError(f"logits must be floating point; got {logits.dtype}")
    if not jnp.issubdtype(targets.dtype, jnp.integer):
        raise ValueError(f"targets must be integers; got {targets.dtype}")
    if targets.shape != logits.shape[:-1]:
        raise ValueError(
            f"targets shape {targets.shape} does not match logits shape {logits.shape} "
            f"(expected {logits.shape[:-1]})"
        )


def _check_target_range(targets, limit, mask=None, what="targets"):
    """Eager range check (skipped under tracing, where the kernels flag bad rows instead)."""
    if not (_is_concrete(targets) and (mask is None or _is_concrete(mask))):
        return
    t = np.asarray(targets)
    bad = (t < 0) | (t >= limit)
    if mask is not None:
        bad &= np.asarray(mask, bool)
    if bad.any():
        idx = np.argwhere(bad)
        first = ", ".join(str(tuple(int(i) for i in row)) for row in idx[:5])
        raise ValueError(
            f"{int(bad.sum())} {what} outside [0, {limit}) (e.g. value {int(t[tuple(idx[0])])} "
            f"at index {first})"
        )


def token_stats(logits, targets, *, impl: str = "auto", vocab_limit: int | None = None) -> TokenStats:
    """Per-token ``(logp, rank, ties)`` of logits ``[..., V]`` against integer ``targets [...]``.

    ``logp`` is float32 (whatever the logits' dtype), ``rank`` counts entries strictly greater
    than the target logit (ties count in the target's favour), ``ties`` counts other entries
    equal to it. The vocabulary is streamed in chunks; no full-size float32 copy is made.
    ``impl`` picks the implementation (``rce_kernels.available_impls()``). Out-of-range targets
    raise eagerly; under ``jit`` they, and rows with NaN/+inf logits, are flagged with
    ``rank = ties = -1`` and ``logp = NaN``.
    """
    logits = jnp.asarray(logits)
    targets = jnp.asarray(targets)
    _check_inputs(logits, targets)
    V = logits.shape[-1]
    limit = resolve_vocab_limit(V, vocab_limit)
    _check_target_range(targets, limit)
    lead = logits.shape[:-1]
    out = rce_kernels.token_stats(
        logits.reshape(-1, V), targets.reshape(-1), vocab_limit=vocab_limit, impl=impl
    )
    return TokenStats(*(x.reshape(lead) for x in out))


def _check_fused_inputs(hidden, head, targets, bias):
    if hidden.ndim < 2 or head.ndim != 2:
        raise ValueError(
            "hidden must be [T, d] or [B, L, d] and head [V, d]; "
            f"got {hidden.shape} and {head.shape}"
        )
    named = [("hidden", hidden), ("head", head)] + ([("bias", bias)] if bias is not None else [])
    for name, x in named:
        if not jnp.issubdtype(x.dtype, jnp.floating):
            raise ValueError(f"{name} must be floating point; got {x.dtype}")
    if hidden.shape[-1] != head.shape[1]:
        raise ValueError(
            f"hidden width {hidden.shape[-1]} does not match head width {head.shape[1]}"
        )
    if not jnp.issubdtype(targets.dtype, jnp.integer):
        raise ValueError(f"targets must be integers; got {targets.dtype}")
    if targets.shape != hidden.shape[:-1]:
        raise ValueError(
            f"targets shape {targets.shape} does not match hidden shape {hidden.shape} "
            f"(expected {hidden.shape[:-1]})"
        )
    if bias is not None and bias.shape != head.shape[:1]:
        raise ValueError(
            f"bias shape {bias.shape} does not match head shape {head.shape} "
            f"(expected ({head.shape[0]},))"
        )


def token_stats_fused(hidden, head, targets, *, bias=None, impl: str = "auto",
                      vocab_limit: int | None = None, logits_dtype=None) -> TokenStats:
    """Per-token ``(logp, rank, ties)`` of the logits ``hidden @ head.T + bias`` without
    materialising them.

    ``hidden`` is ``[T, d]`` or ``[B, L, d]``, ``head`` the LM head ``[V, d]``, ``bias`` an
    optional ``[V]``. The logits are accumulated in float32 and rounded once to ``logits_dtype``
    (default: the hidden dtype) before ranking, i.e. ranks are those of materialised logits of
    that precision. Validation and flags as in ``token_stats``; ``impl`` as there (see
    ``rce_kernels.fused_token_stats``).
    """
    hidden, head, targets = jnp.asarray(hidden), jnp.asarray(head), jnp.asarray(targets)
    bias = None if bias is None else jnp.asarray(bias)
    _check_fused_inputs(hidden, head, targets, bias)
    limit = resolve_vocab_limit(head.shape[0], vocab_limit)
    _check_target_range(targets, limit)
    lead = targets.shape
    out = rce_kernels.fused_token_stats(
        hidden.reshape(-1, hidden.shape[-1]), head, targets.reshape(-1), bias_V=bias,
        vocab_limit=vocab_limit, logits_dtype=logits_dtype, impl=impl,
    )
    return TokenStats(*(x.reshape(lead) for x in out))


def decompose(logits, targets, mask=None, *, impl: str = "auto", vocab_limit: int | None = None,
              meta: dict | None = None) -> Decomposition:
    """One-shot decomposition of the tokens of ``logits`` ``[T, V]`` or ``[B, L, V]``.

    ``mask`` (same shape as ``targets``, default all true) selects the scored tokens; targets at
    masked positions may hold anything (e.g. -100). Raises ValueError if no token is scored or a
    scored token has NaN/+inf logits, an out-of-range target or a target logit of -inf.
    """
    logits = jnp.asarray(logits)
    targets = jnp.asarray(targets)
    _check_inputs(logits, targets)
    if mask is None:
        mask = jnp.ones(targets.shape, bool)
    mask = jnp.asarray(mask)
    if mask.shape != targets.shape:
        raise ValueError(f"mask shape {mask.shape} does not match targets shape {targets.shape}")
    mask = mask.astype(bool)
    V = logits.shape[-1]
    limit = resolve_vocab_limit(V, vocab_limit)
    _check_target_range(targets, limit, mask)
    if _is_concrete(mask) and not bool(jnp.any(mask)):
        raise ValueError("all tokens are masked: nothing to decompose")
    # Inputs are checked above: straight to the kernels (token_stats would check them again).
    logp, rank, ties = rce_kernels.token_stats(
        logits.reshape(-1, V), jnp.where(mask, targets, 0).reshape(-1), vocab_limit=vocab_limit,
        impl=impl)
    settings = {"tie_rule": TIE_RULE, "vocab_limit": limit, "ranked_logits_dtype": str(logits.dtype)}
    stats = RankStats.from_token_stats(
        logp, rank, ties, mask, vocab_size=limit, meta={**settings, **(meta or {})}
    )
    return stats.decompose()
