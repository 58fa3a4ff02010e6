"""The loss and the jitted train step.

Loss: ``L = CE + lam * Conf`` of ``rce_jax.losses`` over the batch's scored targets (custom
VJP: the backward is cross-entropy's with a per-token weight). Either on materialised logits
(``proxy_loss``) or with the LM head fused into the token statistics (``proxy_loss_fused``,
never writing ``[T, V]``).

Which path and token-statistics implementation ``auto`` picks (``resolve_loss``), measured
with ``rce_jax.bench.train_step`` (docs/measurements.md#training-step-proxy-loss-vs-plain-ce):
on CPU, materialised logits with ``impl="naive"`` while the float32 ``[T, V]`` block fits in ``NAIVE_MAX_BYTES``: one fused
XLA pass computes log-sum-exp and both rank counts, whereas the streaming ``xla`` loop (built
to bound memory on accelerators) runs slice by slice and was several times slower than
optax's cross-entropy on CPU; above the limit, the fused head with the streaming loop (memory
stays O(T * chunk)). On GPU and TPU, materialised logits with the backend's Pallas kernel
(``impl="auto"``), on one device or on a mesh: there the loss runs the kernels per shard of
rows inside ``shard_map`` (``rce_kernels.shard_rows``, through ``proxy_loss(..., mesh=)``) and
sums the batch terms over ``data``, since a Pallas kernel is a custom call that XLA cannot
partition under plain ``jit`` (it would gather the whole logits onto every device).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import optax
import rce_kernels
from flax import nnx
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

from ..losses import ProxyLossAux, proxy_loss, proxy_loss_fused
from ..sharding import DATA

NAIVE_MAX_BYTES = 1 << 30


def resolve_loss(loss, *, tokens_per_step: int, vocab_size: int, backend: str | None = None):
    """``(head, impl)`` that the loss section asks for, with ``auto`` resolved (module doc). The
    choice does not depend on the mesh: on several devices the kernels run per shard of rows."""
    backend = backend or jax.default_backend()
    head, impl = loss.head, loss.impl
    if head == "auto":
        big = tokens_per_step * vocab_size * 4 > NAIVE_MAX_BYTES
        head = "fused" if backend == "cpu" and big else "materialised"
    if impl == "auto" and backend == "cpu":
        impl = "naive" if head == "materialised" else "xla"
    if head == "fused" and impl == "naive":
        raise ValueError("loss.impl='naive' needs materialised logits (loss.head='materialised')")
    return head, impl


def loss_kernel_plan(*, head: str, impl: str, tokens_per_step: int, vocab_size: int,
                     hidden_size: int, dtype, mesh=None):
    """The ``rce_kernels.KernelPlan`` the loss's token statistics run with: the dispatch's own
    planner on the rows each device holds (``tokens_per_step`` over the mesh's ``data`` axis)
    and the logits' (materialised) or operands' (fused) dtype, for the training log."""
    rows = tokens_per_step // (1 if mesh is None else mesh.shape.get(DATA, 1))
    if head == "fused":
        return rce_kernels.plan_fused_token_stats((rows, hidden_size), (vocab_size, hidden_size),
                                                  dtype, dtype, impl=impl)
    return rce_kernels.plan_token_stats((rows, vocab_size), dtype, impl=impl)


def _hidden_states(model, batch):
    """The model on a batch's inputs, with its segment ids and positions as in evaluation."""
    return model.hidden_states(batch["input_ids"], positions_BxL=batch["positions"],
                               segment_ids_BxL=batch["segment_ids"])


def make_loss_fn(graphdef, *, lam: float, head: str, impl: str, mesh=None):
    """``loss_fn(params, batch) -> (loss, ProxyLossAux)`` of the model ``graphdef``; ``batch``:
    the placed model inputs of an ``rce_jax.data.Batch`` (``rce_jax.sharding.shard_batch``), the
    loss over its ``score_mask``; on a ``mesh`` the token statistics run per shard of rows
    (module doc)."""

    def loss_fn(params, batch):
        model = nnx.merge(graphdef, params)
        h_BxLxE = _hidden_states(model, batch)
        w_VxE, bias_V = model.lm_head()
        w_VxE = w_VxE.astype(h_BxLxE.dtype)
        if head == "fused":
            return proxy_loss_fused(h_BxLxE, w_VxE, batch["target_ids"], batch["score_mask"],
                                    lam=lam, bias=bias_V, impl=impl, mesh=mesh)
        logits = jnp.einsum("ble,ve->blv", h_BxLxE, w_VxE)
        if bias_V is not None:
            logits = logits + bias_V.astype(logits.dtype)
        return proxy_loss(logits, batch["target_ids"], batch["score_mask"], lam=lam, impl=impl,
                          mesh=mesh)

    return loss_fn


def make_ce_loss_fn(graphdef):
    """The baseline: optax's integer-label cross-entropy on materialised logits (no ranks;
    Conf reported as 0). Used by the step-time benchmark."""

    def loss_fn(params, batch):
        model = nnx.merge(graphdef, params)
        h = _hidden_states(model, batch)
        w, _ = model.lm_head()
        logits = jnp.einsum("ble,ve->blv", h, w.astype(h.dtype))
        mask = batch["score_mask"]
        per_token = optax.softmax_cross_entropy_with_integer_labels(
            logits.astype(jnp.float32), jnp.where(mask, batch["target_ids"], 0))
        n = jnp.sum(mask, dtype=jnp.int32)
        ce = jnp.sum(jnp.where(mask, per_token, 0.0)) / jnp.maximum(n, 1)
        return ce, ProxyLossAux(ce, jnp.zeros((), jnp.float32), n)

    return loss_fn


def _global_norm(tree):
    return jnp.sqrt(sum(jnp.sum(jnp.square(x.astype(jnp.float32))) for x in jax.tree.leaves(tree)))


def make_train_step(loss_fn, tx, schedule, *, shardings=None, mesh=None):
    """``step(state, batch) -> (state, metrics)``, jitted, the state donated.

    ``metrics``: loss, ce, conf, scored_tokens, grad_norm (before clipping), lr (of this update).
    """

    def step_fn(state, batch):
        (loss, aux), grads = jax.value_and_grad(loss_fn, has_aux=True)(state["params"], batch)
        updates, opt_state = tx.update(grads, state["opt_state"], state["params"])
        params = optax.apply_updates(state["params"], updates)
        metrics = {"loss": loss, "ce": aux.ce, "conf": aux.conf, "scored_tokens": aux.n_tokens,
                   "grad_norm": _global_norm(grads), "lr": schedule(state["step"])}
        return {"step": state["step"] + 1, "params": params, "opt_state": opt_state}, metrics

    if shardings is None:
        return jax.jit(step_fn, donate_argnums=0)
    replicated = NamedSharding(mesh, P())
    return jax.jit(step_fn, donate_argnums=0, out_shardings=(shardings, replicated))

