"""from_pretrained: a Hugging Face directory (or cached repo id) -> (model, config, tokenizer).

Every parameter is created with `jax.make_array_from_callback` in its target sharding;
the callback reads just the block each device holds from the checkpoint (safetensors
`get_slice`), so the whole model is never materialised on one host.
"""

from __future__ import annotations

import json
import os
import warnings

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from jax.sharding import Mesh

from rce_jax.models.build import abstract_model
from rce_jax.models.checkpoint import Checkpoint, CheckpointError, safetensors_files
from rce_jax.models.config import ModelConfig
from rce_jax.models.families import FamilySpec, family_spec
from rce_jax.models.mapping import WeightEntry, parse_pattern
from rce_jax.sharding import param_sharding, path_str

TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "tokenizer.model", "vocab.json",
                    "merges.txt", "spiece.model")
_MAX_LISTED = 50


def resolve_model_dir(path: str | os.PathLike, *, cache_dir: str | None = None,
                      revision: str | None = None) -> str:
    """A local directory as is; otherwise a repo id looked up in the local Hugging Face cache
    (never downloaded)."""
    p = os.fspath(path)
    if os.path.isdir(p):
        return p
    if os.path.exists(p):
        raise FileNotFoundError(f"{p} is a file; expected a model directory")
    try:
        from huggingface_hub import snapshot_download

        return snapshot_download(p, cache_dir=cache_dir, revision=revision, local_files_only=True)
    except Exception as e:
        raise FileNotFoundError(
            f"{p!r} is not a directory and is not in the local Hugging Face cache "
            f"({type(e).__name__}: {e})") from e


def load_config(directory: str) -> ModelConfig:
    path = os.path.join(directory, "config.json")
    if not os.path.exists(path):
        raise FileNotFoundError(f"{directory}: no config.json")
    try:
        with open(path) as f:
            d = json.load(f)
    except json.JSONDecodeError as e:
        raise CheckpointError(f"{path}: not valid JSON ({e})") from e
    return ModelConfig.from_hf_dict(d)


def load_tokenizer(directory: str):
    """transformers.AutoTokenizer from the directory, or None (with a warning) if it has none."""
    if not any(os.path.exists(os.path.join(directory, f)) for f in TOKENIZER_FILES):
        warnings.warn(f"{directory} has no tokenizer files ({', '.join(TOKENIZER_FILES)}); "
                      "the returned tokenizer is None", stacklevel=3)
        return None
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(directory)


def _listing(title: str, items: list[str]) -> str:
    shown = items[:_MAX_LISTED]
    more = f"\n    ... and {len(items) - len(shown)} more" if len(items) > len(shown) else ""
    return f"  {title} ({len(items)}):\n" + "\n".join(f"    {s}" for s in shown) + more


def match_checkpoint(ckpt: Checkpoint, spec: FamilySpec, config: ModelConfig,
                     our_shapes: dict[str, tuple[int, ...]]) -> dict[str, tuple[WeightEntry, str]]:
    """our path -> (weight entry, checkpoint tensor name). Missing, unexpected and mis-shaped
    tensors are all reported in one CheckpointError."""
    entries = spec.weight_map(config)
    if sorted(e.path for e in entries) != sorted(our_shapes):
        raise RuntimeError(f"{config.family} weight map does not cover the model's parameters: "
                           f"{sorted(set(our_shapes) ^ {e.path for e in entries})}")
    expected = {e.hf_name: e for e in entries}
    found: dict[str, str] = {}
    unexpected, duplicated = [], []
    for name in ckpt.names():
        canon = spec.canonical_name(name)
        if canon in expected:
            if canon in found:
                duplicated.append(f"{name} and {found[canon]} both give {canon}")
            found[canon] = name
        elif spec.is_ignored(name) or (config.tie_word_embeddings and canon == spec.head_name):
            continue
        else:
            unexpected.append(name)
    missing = [n for n in expected if n not in found]
    misshaped = []
    for canon, name in found.items():
        e = expected[canon]
        want = parse_pattern(e.pattern).hf_shape(our_shapes[e.path])
        if tuple(ckpt.shapes[name]) != want:
            misshaped.append(f"{name}: checkpoint shape {tuple(ckpt.shapes[name])}, "
                             f"config expects {want}")
    problems = [(t, items) for t, items in (("missing tensors", missing),
                                             ("unexpected tensors", unexpected),
                                             ("tensors with the wrong shape", misshaped),
                                             ("duplicated tensors", duplicated)) if items]
    if problems:
        raise CheckpointError(
            f"checkpoint {ckpt.directory} ({ckpt.format}) does not match its {config.family} "
            "config:\n" + "\n".join(_listing(t, items) for t, items in problems))
    return {expected[canon].path: (expected[canon], name) for canon, name in found.items()}


def load_state(ckpt: Checkpoint, config: ModelConfig, abstract_state, *, mesh: Mesh | None,
               param_dtype) -> nnx.State:
    """Create every parameter from the checkpoint, directly in its sharding.

    Each distinct block is read once: devices that hold the same block (replicas along 'data')
    share it, since ``make_array_from_callback`` asks once per device."""
    flat = list(nnx.to_flat_state(abstract_state))
    shapes = {path_str(p): tuple(v.get_value().shape) for p, v in flat}
    plan = match_checkpoint(ckpt, family_spec(config.family), config, shapes)
    out = []
    for p, v in flat:
        path = path_str(p)
        entry, name = plan[path]
        shape, pattern = shapes[path], parse_pattern(entry.pattern)
        sharding = param_sharding(path, shape, config.family, mesh)

        read = {}  # this parameter's blocks, by index

        def block(index, name=name, shape=shape, pattern=pattern, read=read):
            key = tuple(s.indices(n) for s, n in zip(index, shape))
            if key not in read:
                data = pattern.read_block(lambda hf_index: ckpt.read(name, hf_index), shape, index)
                read[key] = np.asarray(data, dtype=param_dtype)
            return read[key]

        arr = jax.make_array_from_callback(shape, sharding, block, dtype=param_dtype)
        out.append((p, v.replace(value=arr)))
    return nnx.from_flat_state(out)


_DTYPE_NAMES = {"float32": "float32", "float16": "float16", "bfloat16": "bfloat16",
                "F32": "float32", "F16": "float16", "BF16": "bfloat16"}


def stored_dtype(path: str | os.PathLike, *, cache_dir: str | None = None,
                 revision: str | None = None) -> str:
    """The checkpoint's own dtype, as transformers' ``torch_dtype="auto"`` reads it: config.json's
    ``dtype`` (or older ``torch_dtype``), else the first floating tensor of the (first) safetensors
    file, single or sharded, else float32. One of ``float32``, ``bfloat16``, ``float16``."""
    directory = resolve_model_dir(path, cache_dir=cache_dir, revision=revision)
    with open(os.path.join(directory, "config.json")) as f:
        hf = json.load(f)
    for key in ("dtype", "torch_dtype"):
        name = str(hf.get(key) or "").removeprefix("torch.")
        if name in _DTYPE_NAMES:
            return _DTYPE_NAMES[name]
    for first in safetensors_files(directory)[:1]:
        try:
            with open(first, "rb") as f:
                header = json.loads(f.read(int.from_bytes(f.read(8), "little")))
        except (OSError, ValueError) as e:
            raise ValueError(f"{first}: not a readable safetensors file ({e}); its dtype is "
                             "unknown, so give --dtype explicitly") from e
        for name, info in header.items():
            if name != "__metadata__" and info.get("dtype") in _DTYPE_NAMES:
                return _DTYPE_NAMES[info["dtype"]]
    return "float32"


def from_pretrained(path: str | os.PathLike, *, dtype=jnp.float32, param_dtype=None,
                    mesh: Mesh | None = None, attention_impl: str = "einsum",
                    cache_dir: str | None = None, revision: str | None = None,
                    tokenizer: bool = True):
    """Load a Hugging Face causal LM: returns (model, config, tokenizer or None).

    path: a local directory with config.json and weights, or a repo id present in the local
      Hugging Face cache (offline; `cache_dir` / `revision` select the snapshot).
    dtype: computation dtype; param_dtype: storage dtype (default: dtype).
    mesh: shard parameters by the family's rules in rce_jax.sharding (None: one device).
    """
    directory = resolve_model_dir(path, cache_dir=cache_dir, revision=revision)
    config = load_config(directory)
    param_dtype = jnp.dtype(dtype if param_dtype is None else param_dtype)
    ckpt = Checkpoint(directory)
    graphdef, abstract_state = nnx.split(abstract_model(
        config, dtype=dtype, param_dtype=param_dtype, attention_impl=attention_impl))
    state = load_state(ckpt, config, abstract_state, mesh=mesh, param_dtype=param_dtype)
    model = nnx.merge(graphdef, state)
    tok = load_tokenizer(directory) if tokenizer else None
    return model, config, tok
