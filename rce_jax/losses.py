"""The proxy loss ``L = CE + lam * Conf`` (docs/design.md#2-the-proxy-loss) with a hand-written backward.

Over the batch's scored tokens (``score_mask``, as in ``rce_jax.data.Batch``; None: all), with
per-token rank ``e`` (a constant: no gradient flows through ranks), ``p_e = N_e / N``,
``Q_e = exp(mean log s over rank e)``, ``C = sum_e Q_e`` and ``q_e = Q_e / C``::

    CE   = -(1/N) sum_i log s_i          Conf = log C
    dL/dz_i = w_i * (softmax(z_i) - onehot(y_i)),   w_i = (1/N) * (1 - lam * q_e / p_e)

``lam = 0`` is plain cross-entropy. Both losses return ``(loss, ProxyLossAux(ce, conf,
n_tokens))`` so that they plug into ``jax.value_and_grad(..., has_aux=True)``; ``ce`` and
``conf`` are differentiable too (their custom VJP, ``rce_kernels.proxy_loss``, handles any
cotangent). The forward is one token-statistics pass, the backward one elementwise pass over the
logits (materialised variant) or a tiled recomputation through the LM head that never writes
[T, V] (fused variant; head and bias gradients accumulated in float32). This module validates
inputs and forms ``loss = ce + lam * conf``.

``lam`` is a Python number or a JAX scalar. Concrete values outside ``[0, 1)`` raise ValueError;
a traced value (e.g. a schedule inside a jitted step) cannot be checked eagerly, so an
out-of-range traced ``lam`` makes the loss NaN. Masked tokens (targets there may hold anything,
e.g. -100) contribute nothing and get zero gradient; an all-masked batch gives loss 0, zero
gradients and ``n_tokens = 0``. Scored tokens with NaN/+inf logits make the loss NaN, a target
logit of -inf makes it +inf, out-of-range scored targets raise eagerly (NaN under jit).
"""

from __future__ import annotations

import numbers
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from rce_kernels.mesh import shard_rows
from rce_kernels.proxy_loss import ce_conf, ce_conf_fused
from rce_kernels.reference import resolve_vocab_limit

from .sharding import DATA
from .scoring import (
    _check_fused_inputs,
    _check_inputs,
    _check_target_range,
    _is_concrete,
)


class ProxyLossAux(NamedTuple):
    """Auxiliary outputs of the proxy losses (scalars of the batch)."""

    ce: jax.Array  # float32: mean -log s over the scored tokens
    conf: jax.Array  # float32: log C, the batch's confidence term
    n_tokens: jax.Array  # int32: number of scored tokens N


def _check_lam(lam):
    if isinstance(lam, numbers.Real) or (_is_concrete(lam) and np.ndim(lam) == 0):
        value = float(lam)
        if not 0.0 <= value < 1.0:
            raise ValueError(f"lam must lie in [0, 1); got {value}")
        return jnp.float32(value), None
    lam = jnp.asarray(lam)
    if lam.ndim != 0:
        raise ValueError(f"lam must be a scalar; got shape {lam.shape}")
    lam = lam.astype(jnp.float32)
    return lam, (lam >= 0) & (lam < 1)


def _prepare_mask(mask, targets):
    if mask is None:
        return jnp.ones(targets.shape, bool)
    mask = jnp.asarray(mask)
    if mask.shape != targets.shape:
        raise ValueError(f"score_mask shape {mask.shape} does not match targets shape {targets.shape}")
    return mask.astype(bool)


def _finish(ce, conf, lam, lam_ok, mask):
    loss = ce + lam * conf
    if lam_ok is not None:
        loss = jnp.where(lam_ok, loss, jnp.nan)
    return loss, ProxyLossAux(ce, conf, jnp.sum(mask, dtype=jnp.int32))


def _check_rows(rows: int, mesh):
    n = 1 if mesh is None else mesh.shape.get(DATA, 1)
    if rows % n:
        raise ValueError(f"{rows} token rows do not split evenly over the mesh's {n} "
                         f"'{DATA}' devices (--batch-size must be a multiple of {n})")


def proxy_loss(logits, targets, score_mask=None, *, lam, impl: str = "auto",
               vocab_limit: int | None = None, mesh=None):
    """``(loss, ProxyLossAux)`` of ``L = CE + lam * Conf`` over the scored tokens of logits
    ``[T, V]`` or ``[B, L, V]`` (see the module docstring). The gradient with respect to the
    logits is the per-token weighted ``softmax - onehot``, in the logits' dtype.

    ``mesh``: with several devices on its ``data`` axis, each device computes the token
    statistics of its own rows (``rce_kernels.shard_rows``, so a Pallas kernel sees its shard)
    and the batch terms are summed over ``data``: the same loss and gradients as one device."""
    logits, targets = jnp.asarray(logits), jnp.asarray(targets)
    _check_inputs(logits, targets)
    mask = _prepare_mask(score_mask, targets)
    lam, lam_ok = _check_lam(lam)
    V = logits.shape[-1]
    limit = resolve_vocab_limit(V, vocab_limit)
    _check_target_range(targets, limit, mask, what="scored targets")
    safe = jnp.where(mask, targets, 0).reshape(-1)
    _check_rows(safe.shape[0], mesh)
    core = lambda z, t, m, axis: ce_conf(z, t, m, vocab_limit, impl, axis)
    ce, conf = shard_rows(core, mesh, DATA, rows=(True, True, True))(
        logits.reshape(-1, V), safe, mask.reshape(-1))
    return _finish(ce, conf, lam, lam_ok, mask)


def proxy_loss_fused(hidden, head, targets, score_mask=None, *, lam, bias=None, impl: str = "auto",
                     vocab_limit: int | None = None, logits_dtype=None, mesh=None):
    """``(loss, ProxyLossAux)`` of ``L = CE + lam * Conf`` for the logits
    ``hidden @ head.T + bias`` (``hidden`` ``[T, d]`` or ``[B, L, d]``, ``head`` ``[V, d]``),
    never materialising them; logits semantics as ``rce_jax.token_stats_fused``. Differentiable
    with respect to ``hidden``, ``head`` and ``bias``; the backward recomputes the logits tile by
    tile (pure JAX, head/bias gradients accumulated in float32)."""
    hidden, head, targets = jnp.asarray(hidden), jnp.asarray(head), jnp.asarray(targets)
    bias = jnp.zeros((head.shape[0],), jnp.float32) if bias is None else jnp.asarray(bias)
    _check_fused_inputs(hidden, head, targets, bias)
    mask = _prepare_mask(score_mask, targets)
    lam, lam_ok = _check_lam(lam)
    limit = resolve_vocab_limit(head.shape[0], vocab_limit)
    _check_target_range(targets, limit, mask, what="scored targets")
    safe = jnp.where(mask, targets, 0).reshape(-1)
    _check_rows(safe.shape[0], mesh)
    core = lambda h, w, b, t, m, axis: ce_conf_fused(h, w, b, t, m, vocab_limit, logits_dtype,
                                                     impl, axis)
    ce, conf = shard_rows(core, mesh, DATA, rows=(True, False, False, True, True))(
        hidden.reshape(-1, hidden.shape[-1]), head, bias, safe, mask.reshape(-1))
    return _finish(ce, conf, lam, lam_ok, mask)
