"""Read-only access to the tensors of a Hugging Face checkpoint directory, slice by slice.

Formats, in order of preference: `model.safetensors`, sharded safetensors with
`model.safetensors.index.json`, then `pytorch_model.bin` (or its sharded index) as a
fallback that needs torch. Safetensors files are opened per read (`safe_open` +
`get_slice`), so at most one requested block is materialised at a time and the file
mapping is released after each read.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence

import ml_dtypes  # noqa: F401  (registers bfloat16 with NumPy for safetensors' numpy reader)
import numpy as np
from safetensors import safe_open

SAFE_SINGLE, SAFE_INDEX = "model.safetensors", "model.safetensors.index.json"
BIN_SINGLE, BIN_INDEX = "pytorch_model.bin", "pytorch_model.bin.index.json"


class CheckpointError(ValueError):
    """A checkpoint that cannot be read or does not match the model (the message says why)."""


def index_files(directory: str | os.PathLike, index_name: str) -> list[str]:
    """The shard files an index file (``model.safetensors.index.json``, ...) of ``directory``
    lists, sorted by name as transformers loads them; each must exist."""
    path = os.path.join(directory, index_name)
    try:
        with open(path) as f:
            weight_map = json.load(f)["weight_map"]
    except (json.JSONDecodeError, KeyError, TypeError) as e:
        raise CheckpointError(f"{path}: not a valid index file ({e})") from e
    files = sorted(set(weight_map.values()))
    missing = [f for f in files if not os.path.exists(os.path.join(directory, f))]
    if missing:
        raise CheckpointError(f"{path} lists shard files that do not exist: {missing}")
    return [os.path.join(directory, f) for f in files]


def safetensors_files(directory: str | os.PathLike) -> list[str]:
    """The safetensors weight files of a checkpoint folder, single or sharded; [] if none."""
    if os.path.exists(os.path.join(directory, SAFE_SINGLE)):
        return [os.path.join(directory, SAFE_SINGLE)]
    if os.path.exists(os.path.join(directory, SAFE_INDEX)):
        return index_files(directory, SAFE_INDEX)
    return []


class Checkpoint:
    """name -> (file, shape); `read(name, index)` returns a NumPy block of the tensor."""

    def __init__(self, directory: str | os.PathLike):
        self.directory = os.fspath(directory)
        self.files: dict[str, str] = {}  # tensor name -> file path
        self.shapes: dict[str, tuple[int, ...]] = {}
        self._torch: dict[str, dict] = {}  # file -> lazily mmapped torch state dict
        d = self.directory
        if os.path.exists(os.path.join(d, SAFE_SINGLE)):
            self.format = "safetensors"
            self._scan_safetensors([os.path.join(d, SAFE_SINGLE)])
        elif os.path.exists(os.path.join(d, SAFE_INDEX)):
            self.format = "safetensors (sharded)"
            self._scan_safetensors(index_files(d, SAFE_INDEX))
        elif os.path.exists(os.path.join(d, BIN_SINGLE)):
            self.format = "pytorch_model.bin"
            self._scan_torch([os.path.join(d, BIN_SINGLE)])
        elif os.path.exists(os.path.join(d, BIN_INDEX)):
            self.format = "pytorch_model.bin (sharded)"
            self._scan_torch(index_files(d, BIN_INDEX))
        else:
            raise FileNotFoundError(
                f"{d}: no weights found (looked for {SAFE_SINGLE}, {SAFE_INDEX}, {BIN_SINGLE}, {BIN_INDEX})")

    # ---- scanning -------------------------------------------------------------------------
    def _scan_safetensors(self, paths: Sequence[str]) -> None:
        for path in paths:
            try:
                with safe_open(path, framework="numpy") as f:
                    shapes = [(name, tuple(f.get_slice(name).get_shape())) for name in f.keys()]
            except Exception as e:  # safetensors raises its own error type for bad files
                raise CheckpointError(
                    f"{path}: cannot read this safetensors file (truncated or corrupt?): {e}") from e
            for name, shape in shapes:  # outside the try: a duplicate is not a corrupt file
                self._add(name, path, shape)

    def _scan_torch(self, paths: Sequence[str]) -> None:
        try:
            import torch
        except ImportError as e:
            raise CheckpointError(
                f"{self.directory} has only PyTorch .bin weights; reading them needs torch "
                "(pip install torch), or convert the checkpoint to safetensors") from e
        for path in paths:
            try:
                try:  # zip-format files are memory-mapped: tensors are read when sliced
                    sd = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
                except RuntimeError as e:
                    if "mmap" not in str(e):
                        raise
                    sd = torch.load(path, map_location="cpu", weights_only=True)  # legacy format
            except Exception as e:
                raise CheckpointError(f"{path}: cannot read this PyTorch checkpoint: {e}") from e
            self._torch[path] = sd
            for name, t in sd.items():
                self._add(name, path, tuple(t.shape))

    def _add(self, name: str, path: str, shape: tuple[int, ...]) -> None:
        if name in self.files:
            raise CheckpointError(f"tensor {name!r} appears in both {self.files[name]} and {path}")
        self.files[name] = path
        self.shapes[name] = shape

    # ---- reading --------------------------------------------------------------------------
    def names(self) -> list[str]:
        return list(self.files)

    def read(self, name: str, index: tuple[slice, ...]) -> np.ndarray:
        """Block `index` (one slice per axis) of tensor `name` as a NumPy array."""
        path = self.files[name]
        if path in self._torch:
            t = self._torch[path][name][index]
            if str(t.dtype) == "torch.bfloat16":
                return t.view(dtype=_torch_int16()).numpy().view(ml_dtypes.bfloat16)
            return t.numpy()
        with safe_open(path, framework="numpy") as f:
            return f.get_slice(name)[index]

    def largest_file_bytes(self) -> int:
        return max(os.path.getsize(p) for p in set(self.files.values()))


def _torch_int16():
    import torch

    return torch.int16
