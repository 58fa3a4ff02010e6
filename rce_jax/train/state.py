"""Optimizer, train state and where its arrays live on the mesh.

The train state is a plain dict pytree ``{"step", "params", "opt_state"}``: ``params`` is the
model's ``nnx.State`` (``nnx.split``), ``opt_state`` optax's state for it. It is what the jitted
step takes and returns (donated) and what orbax saves.

Sharding: without a mesh everything lives on the first device. With one, parameters follow the
family's rules (``rce_jax.sharding``: replicated over ``data``, split over ``model``); with
``fsdp`` each parameter is also split over ``data`` along its largest dimension that the
``data`` axis divides and the rules leave free (ZeRO-3 style: GSPMD gathers it for the
forward and reduce-scatters its gradient). Optimizer moments take the sharding of their
parameter; scalars are replicated.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import optax
from flax import nnx
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

from ..sharding import DATA, partition_spec, path_str


def make_schedule(optim, steps: int, hidden_size: int):
    """Linear warmup from 0 to the peak (``optim.peak_lr(hidden_size)``) over
    ``optim.warmup(steps)`` steps, cosine to ``peak * min_lr_ratio`` at ``steps``."""
    peak = optim.peak_lr(hidden_size)
    return optax.warmup_cosine_decay_schedule(
        init_value=0.0, peak_value=peak, warmup_steps=optim.warmup(steps),
        decay_steps=steps, end_value=peak * optim.min_lr_ratio)


def _decay_mask(params):
    return jax.tree.map(lambda x: x.ndim >= 2, params)


def make_optimizer(optim, steps: int, hidden_size: int):
    """``(tx, schedule)``: clip by global norm, then AdamW (decay on matrices only)."""
    schedule = make_schedule(optim, steps, hidden_size)
    adamw = optax.adamw(schedule, b1=optim.b1, b2=optim.b2, eps=optim.eps,
                        weight_decay=optim.weight_decay, mask=_decay_mask)
    tx = optax.chain(optax.clip_by_global_norm(optim.clip_norm), adamw) if optim.clip_norm > 0 else adamw
    return tx, schedule


def fsdp_spec(spec: P, shape, data_size: int) -> P:
    """``spec`` with ``data`` added on the largest free dimension that ``data_size`` divides."""
    dims = list(tuple(spec) + (None,) * (len(shape) - len(spec)))
    free = [i for i, ax in enumerate(dims) if ax is None and shape[i] % data_size == 0]
    if data_size > 1 and free:
        best = max(free, key=lambda i: (shape[i], -i))
        dims[best] = DATA
    return P(*dims)


def place_params(params: nnx.State, family: str, mesh, fsdp: bool) -> nnx.State:
    """``params`` moved to their shardings on ``mesh`` (the rules; FSDP on top if asked)."""

    def one(path, value):
        spec = partition_spec(path_str(path), value.shape, family, mesh)
        if fsdp:
            spec = fsdp_spec(spec, value.shape, mesh.shape[DATA])
        return jax.device_put(value, NamedSharding(mesh, spec))

    return nnx.from_flat_state([(p, v.replace(value=one(p, v.get_value())))
                                for p, v in nnx.to_flat_state(params)])


def init_state(params: nnx.State, tx, *, family: str, mesh=None, fsdp: bool = False):
    """``(state, shardings)``: step 0, ``params`` placed (FSDP if asked), fresh optimizer state.

    ``shardings`` is a tree like ``state`` (None without a mesh), for jit's out_shardings and
    for restoring checkpoints straight into place.
    """
    if mesh is not None:
        params = place_params(params, family, mesh, fsdp)
        targets = jax.tree.map(lambda x: x.sharding, params)
        replicated = NamedSharding(mesh, P())
        opt_shardings = _moment_shardings(jax.eval_shape(tx.init, params), targets, replicated)
        opt_state = jax.jit(tx.init, out_shardings=opt_shardings)(params)
        shardings = {"step": replicated, "params": targets, "opt_state": opt_shardings}
        step = jax.device_put(jnp.zeros((), jnp.int32), replicated)
    else:
        # Everything committed to one device, like every later step's output, so that the
        # jitted step sees the same argument placement at step 0 and compiles only once.
        device = jax.sharding.SingleDeviceSharding(jax.local_devices()[0])
        params = jax.device_put(params, device)
        opt_state = jax.device_put(jax.jit(tx.init)(params), device)
        shardings = None
        step = jax.device_put(jnp.zeros((), jnp.int32), device)
    return {"step": step, "params": params, "opt_state": opt_state}, shardings


def _moment_shardings(abstract_opt, targets, replicated):
    """Each optimizer-state leaf whose tree path ends with a parameter's path (Adam's moments,
    under whatever wrappers optax adds) gets that parameter's sharding; the rest is replicated."""
    by_path = {tuple(path): s for path, s in jax.tree_util.tree_flatten_with_path(targets)[0]}
    longest = max((len(p) for p in by_path), default=0)

    def pick(path, leaf):
        path = tuple(path)
        for n in range(min(longest, len(path)), 0, -1):
            s = by_path.get(path[-n:])
            if s is not None and len(s.spec) <= leaf.ndim:
                return s
        return replicated

    return jax.tree_util.tree_map_with_path(pick, abstract_opt)
