"""save_pretrained: our model -> a Hugging Face directory that transformers loads.

Driven by the same weight map as loading (mapping.py applies each entry's layout in
reverse). Writes config.json and model.safetensors (or numbered shards plus
model.safetensors.index.json above `max_shard_bytes`); every file is written to a
temporary name and renamed, and weight files of an earlier export are removed.
Only one shard's tensors are gathered to the host at a time. Multi-host: every process
must call this (arrays are gathered collectively); process 0 writes.
"""

from __future__ import annotations

import glob
import os

import jax
import numpy as np
from flax import nnx
from jax.experimental import multihost_utils
from safetensors.numpy import save_file

from rce_jax.io import atomic_path, write_json
from rce_jax.models.checkpoint import SAFE_INDEX, SAFE_SINGLE
from rce_jax.models.config import ModelConfig
from rce_jax.models.families import family_spec
from rce_jax.models.mapping import parse_pattern
from rce_jax.sharding import path_str

_TORCH_DTYPE = {"float32": "float32", "bfloat16": "bfloat16", "float16": "float16"}


def _to_host(arr: jax.Array) -> np.ndarray:
    if getattr(arr, "is_fully_addressable", True):
        return np.asarray(jax.device_get(arr))
    return np.asarray(multihost_utils.process_allgather(arr, tiled=True))


def save_pretrained(model, config: ModelConfig, out_dir: str | os.PathLike, tokenizer=None, *,
                    max_shard_bytes: int = 5_000_000_000) -> str:
    """Write `model` as a Hugging Face checkpoint directory; returns its path."""
    out_dir = os.fspath(out_dir)
    spec = family_spec(config.family)
    entries = spec.weight_map(config)
    params = {path_str(p): v for p, v in nnx.to_flat_state(nnx.state(model, nnx.Param))}
    if sorted(params) != sorted(e.path for e in entries):
        raise ValueError(f"model parameters do not match the {config.family} weight map: "
                         f"{sorted(set(params) ^ {e.path for e in entries})}")
    dtypes = {str(params[e.path][...].dtype) for e in entries}
    if len(dtypes) != 1 or next(iter(dtypes)) not in _TORCH_DTYPE:
        raise ValueError(f"parameters must share one dtype of {list(_TORCH_DTYPE)}, got {dtypes}")
    dtype = next(iter(dtypes))

    shards: list[list] = [[]]
    size = 0
    for e in entries:
        nbytes = params[e.path][...].nbytes
        if shards[-1] and size + nbytes > max_shard_bytes:
            shards.append([])
            size = 0
        shards[-1].append(e)
        size += nbytes
    names = ([SAFE_SINGLE] if len(shards) == 1 else
             [f"model-{i + 1:05d}-of-{len(shards):05d}.safetensors" for i in range(len(shards))])

    writer = jax.process_index() == 0
    if writer:
        os.makedirs(out_dir, exist_ok=True)
        old = set(glob.glob(os.path.join(out_dir, "model*.safetensors*")) +
                  glob.glob(os.path.join(out_dir, "pytorch_model*.bin*")))
    weight_map, total = {}, 0
    for shard, fname in zip(shards, names):
        tensors = {e.hf_name: parse_pattern(e.pattern).to_hf(_to_host(params[e.path][...]))
                   for e in shard}
        for k, t in tensors.items():
            weight_map[k] = fname
            total += t.nbytes
        if writer:
            with atomic_path(os.path.join(out_dir, fname)) as tmp:
                save_file(tensors, str(tmp), metadata={"format": "pt"})
        del tensors
    if not writer:
        return out_dir
    if len(shards) > 1:
        write_json(os.path.join(out_dir, SAFE_INDEX),
                   {"metadata": {"total_size": total}, "weight_map": weight_map}, sort_keys=True)
    written = names + ([SAFE_INDEX] if len(shards) > 1 else [])
    for stale in old - {os.path.join(out_dir, n) for n in written}:
        os.remove(stale)
    hf = config.to_hf_dict()
    hf.update(torch_dtype=_TORCH_DTYPE[dtype], dtype=_TORCH_DTYPE[dtype])
    write_json(os.path.join(out_dir, "config.json"), hf, sort_keys=True)
    if tokenizer is not None:
        tokenizer.save_pretrained(out_dir)
    return out_dir
