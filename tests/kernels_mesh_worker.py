"""Worker of test_kernels_mesh.py (needs 8 simulated CPU devices): the proxy losses on a
data-parallel mesh of 8 devices with the Pallas kernels (interpret mode), against one device.

Prints one JSON object: per case the loss, CE, Conf and gradients on 8 devices and on one, and
the row counts each kernel call saw (a spy on the dispatch's kernel functions)."""

import json
import os
import sys

assert "xla_force_host_platform_device_count=8" in os.environ.get("XLA_FLAGS", "")

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
from jax.sharding import Mesh, NamedSharding  # noqa: E402
from jax.sharding import PartitionSpec as P  # noqa: E402

import rce_kernels.dispatch as dispatch  # noqa: E402
from rce_jax.losses import proxy_loss, proxy_loss_fused  # noqa: E402

assert jax.device_count() == 8
SEED = int(sys.argv[1])
CASES = sys.argv[2].split(",")  # e.g. materialised/pallas_tpu_interpret,fused/xla
calls = []


def spy(name):
    real = getattr(dispatch, name)

    def wrapped(*args, **kwargs):
        calls.append((name, int(args[0].shape[0])))
        return real(*args, **kwargs)

    setattr(dispatch, name, wrapped)


for name in ("token_stats_mgpu", "token_stats_tpu", "fused_token_stats_mgpu",
             "fused_token_stats_tpu", "token_stats_xla", "fused_token_stats_xla"):
    spy(name)

mesh = Mesh(np.array(jax.devices()).reshape(8, 1), ("data", "model"))
rows = NamedSharding(mesh, P("data"))
B, L, V, D, lam = 8, 16, 1000, 64, 0.3
k1, k2, k3, k4, k5 = jax.random.split(jax.random.key(SEED), 5)
targets = jax.random.randint(k2, (B, L), 0, V)
mask = jax.random.bernoulli(k3, 0.8, (B, L))
out = {"seed": SEED}


def run(name, fn, args, on_mesh):
    calls.clear()

    def loss(*a):
        value, aux = fn(*a, mesh=mesh if on_mesh else None)
        return value, aux

    if on_mesh:
        args = tuple(jax.device_put(a, rows) if a.shape[0] == B else a for a in args)
    (value, aux), grads = jax.jit(jax.value_and_grad(loss, argnums=tuple(range(len(args) - 2)),
                                                     has_aux=True))(*args)
    return {"loss": float(value), "ce": float(aux.ce), "conf": float(aux.conf),
            "n": int(aux.n_tokens), "grads": [np.asarray(g, np.float64).tolist() for g in grads],
            "calls": sorted(set(calls))}


logits = jax.random.normal(k1, (B, L, V), jnp.float32) * 3
for impl in [c.split("/")[1] for c in CASES if c.startswith("materialised/")]:
    fn = lambda z, t, m, mesh, impl=impl: proxy_loss(z, t, m, lam=lam, impl=impl, mesh=mesh)
    out[f"materialised/{impl}"] = {
        "mesh": run(impl, fn, (logits, targets, mask), True),
        "one": run(impl, fn, (logits, targets, mask), False)}

hidden = jax.random.normal(k4, (B, L, D), jnp.float32)
head = jax.random.normal(k5, (V, D), jnp.float32) / 8
for impl in [c.split("/")[1] for c in CASES if c.startswith("fused/")]:
    dt = jnp.bfloat16 if impl == "pallas_interpret" else jnp.float32  # WGMMA: 16-bit operands
    fn = lambda h, w, t, m, mesh, impl=impl: proxy_loss_fused(h, w, t, m, lam=lam, impl=impl,
                                                              mesh=mesh)
    args = (hidden.astype(dt), head.astype(dt), targets, mask)
    out[f"fused/{impl}"] = {"mesh": run(impl, fn, args, True), "one": run(impl, fn, args, False)}
print(json.dumps(out))
