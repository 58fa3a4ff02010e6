"""Mesh, parameter sharding rules and batch sharding (no pmap; jit + NamedSharding).

Mesh axes: 'data' (batch) and 'model' (tensor parallel). Parameters are replicated
over 'data' and sharded over 'model' by an explicit per-family table of
(regex over the parameter path, PartitionSpec). A dimension that the mesh axis does
not divide (GPT-2's vocabulary 50257, an odd head count) is replicated instead of
padded: padding would add vocabulary rows and change the ranking (docs/design.md#5-numerics).

Multi-host: call `jax.distributed.initialize()` first on every process, build the
mesh over all devices with `make_mesh`, load with `from_pretrained(..., mesh=mesh)`
(each process reads only the slices its devices hold); every process builds the same global
batch and `shard_batch` places the rows each process's devices hold.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P, SingleDeviceSharding

from .data.batch import Batch

DATA, MODEL = "data", "model"

_NORMS = (r"(layers\.\d+\.(attn_norm|mlp_norm)|final_norm)\.(scale|bias)", P())
_VOCAB = P(MODEL, None)  # [V, E] token embedding and LM head: split the vocabulary
_SEPARATE_QKV = (
    (r"layers\.\d+\.attn\.(q|k|v)\.kernel", P(None, MODEL, None)),  # [D, H|G, K]
    (r"layers\.\d+\.attn\.(q|k|v)\.bias", P(MODEL, None)),  # [H|G, K]
)
_OUT = (
    (r"layers\.\d+\.attn\.o\.kernel", P(MODEL, None, None)),  # [H, K, D]
    (r"layers\.\d+\.attn\.o\.bias", P()),
)
_MLP = (
    (r"layers\.\d+\.mlp\.(gate|up)\.kernel", P(None, MODEL)),  # [D, F]
    (r"layers\.\d+\.mlp\.(gate|up)\.bias", P(MODEL)),
    (r"layers\.\d+\.mlp\.down\.kernel", P(MODEL, None)),  # [F, D]
    (r"layers\.\d+\.mlp\.down\.bias", P()),
)
_LLAMA = (
    (r"embed\.embedding", _VOCAB), *_SEPARATE_QKV, *_OUT, *_MLP, _NORMS, (r"unembed", _VOCAB))

PARTITION_RULES: dict[str, tuple[tuple[str, P], ...]] = {
    "gpt2": (
        (r"embed\.embedding", _VOCAB),
        (r"pos_embed\.embedding", P()),
        (r"layers\.\d+\.attn\.qkv\.kernel", P(None, None, MODEL, None)),  # [D, 3, H, K]
        (r"layers\.\d+\.attn\.qkv\.bias", P(None, MODEL, None)),  # [3, H, K]
        *_OUT, *_MLP, _NORMS,
        (r"unembed", _VOCAB),
    ),
    "gpt_neox": (
        (r"embed\.embedding", _VOCAB),
        (r"layers\.\d+\.attn\.qkv\.kernel", P(None, MODEL, None, None)),  # [D, H, 3, K]
        (r"layers\.\d+\.attn\.qkv\.bias", P(MODEL, None, None)),  # [H, 3, K]
        *_OUT, *_MLP, _NORMS,
        (r"unembed", _VOCAB),
    ),
    "opt": (
        (r"embed\.embedding", _VOCAB),
        (r"pos_embed\.embedding", P()),
        (r"project_in\.kernel", P()),
        (r"project_out\.kernel", P()),
        *_SEPARATE_QKV, *_OUT, *_MLP, _NORMS,
        (r"unembed", _VOCAB),
    ),
    "llama": _LLAMA,
    "mistral": _LLAMA,
    "qwen2": _LLAMA,
}


def make_mesh(data: int | None = None, model: int = 1, *,
              devices: Sequence[jax.Device] | None = None) -> Mesh:
    """A ('data', 'model') mesh over `devices` (default: all devices of all processes).
    `data` defaults to len(devices) // model."""
    devices = list(jax.devices() if devices is None else devices)
    if data is None:
        data = len(devices) // model
    if data * model != len(devices):
        raise ValueError(f"mesh data={data} x model={model} does not match {len(devices)} devices")
    return jax.make_mesh((data, model), (DATA, MODEL), devices=devices,
                         axis_types=(jax.sharding.AxisType.Auto,) * 2)


def _axis_size(mesh: Mesh, axis) -> int:
    axes = axis if isinstance(axis, tuple) else (axis,)
    return math.prod(mesh.shape[a] for a in axes)


def fit_spec(spec: P, shape: Sequence[int], mesh: Mesh) -> P:
    """`spec` with every mesh axis that does not divide its dimension replaced by None."""
    dims = tuple(spec) + (None,) * (len(shape) - len(spec))
    return P(*(ax if ax is None or size % _axis_size(mesh, ax) == 0 else None
               for size, ax in zip(shape, dims)))


def partition_spec(path: str, shape: Sequence[int], family: str, mesh: Mesh) -> P:
    """The PartitionSpec of parameter `path` (e.g. 'layers.3.attn.q.kernel')."""
    if family not in PARTITION_RULES:
        raise ValueError(f"no partition rules for family {family!r}")
    for pattern, spec in PARTITION_RULES[family]:
        if re.fullmatch(pattern, path):
            if len(spec) > len(shape):
                raise ValueError(f"rule {pattern} -> {spec} has more axes than {path} {tuple(shape)}")
            return fit_spec(spec, shape, mesh)
    raise ValueError(f"{family}: no partition rule matches parameter {path!r}")


def param_sharding(path: str, shape: Sequence[int], family: str,
                   mesh: Mesh | None) -> jax.sharding.Sharding:
    """NamedSharding by the rules, or the first local device when there is no mesh."""
    if mesh is None:
        return SingleDeviceSharding(jax.local_devices()[0])
    return NamedSharding(mesh, partition_spec(path, shape, family, mesh))


def path_str(path: Sequence) -> str:
    return ".".join(str(p) for p in path)


def batch_sharding(mesh: Mesh, ndim: int = 2) -> NamedSharding:
    """Rows on 'data', everything else replicated."""
    return NamedSharding(mesh, P(DATA, *(None,) * (ndim - 1)))


def shard_batch(batch, mesh: Mesh | None):
    """Device arrays of a global batch: of an ``rce_jax.data.Batch``, its model inputs (a dict by
    the names of ``rce_jax.data.MODEL_INPUTS``, what the evaluation and training steps take);
    otherwise the same pytree of host arrays [rows, ...].

    Every process passes the same whole global batch (every process builds the same plan) and
    places exactly the rows its own devices hold, whatever the mesh layout: when the 'model'
    axis spans processes, several processes hold the same rows, so "each process feeds a
    contiguous share" would be wrong. Without a mesh, plain arrays on the default device.
    """
    if isinstance(batch, Batch):
        batch = batch.model_inputs()
    if mesh is None:
        return jax.tree.map(jnp.asarray, batch)

    def put(x):
        x = np.asarray(x)
        if x.shape[0] % mesh.shape[DATA]:
            raise ValueError(f"global batch of {x.shape[0]} rows is not divisible by the "
                             f"'data' axis ({mesh.shape[DATA]})")
        return jax.make_array_from_callback(x.shape, batch_sharding(mesh, x.ndim),
                                            lambda index: x[index])

    return jax.tree.map(put, batch)


def check_hosts_agree(value: int, message: str) -> None:
    """On several processes, fail with ``message`` unless every process holds the same
    ``value`` (e.g. the batch or step a resumed run continues from); a no-op on one process."""
    if jax.process_count() > 1:
        from jax.experimental import multihost_utils

        multihost_utils.assert_equal(np.int64(value), message)
