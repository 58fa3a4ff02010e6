"""The name/layout mapping between Hugging Face tensors and our parameters, used both ways.

A family's weight map is a list of `WeightEntry(path, hf_name, pattern)`. The pattern
reads like einops: "(h k) d -> d h k" says the HF tensor has two axes, the first of
which is heads x head_dim flattened, and our parameter is [d, h, k]. Sizes come from
our parameter's shape. Loading reads any rectangular block of our parameter straight
from the HF tensor (`read_block`, for jax.make_array_from_callback); export applies
the inverse (`to_hf`). One table, both directions.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Callable, Sequence

import numpy as np


@dataclasses.dataclass(frozen=True)
class WeightEntry:
    path: str  # our parameter, e.g. "layers.0.attn.q.kernel"
    hf_name: str  # canonical HF tensor name, e.g. "model.layers.0.self_attn.q_proj.weight"
    pattern: str  # HF axes -> our axes, e.g. "(h k) d -> d h k"


@dataclasses.dataclass(frozen=True)
class AxisPattern:
    hf_groups: tuple[tuple[str, ...], ...]
    ours: tuple[str, ...]

    @property
    def hf_names(self) -> tuple[str, ...]:
        return tuple(n for g in self.hf_groups for n in g)

    def sizes(self, our_shape: Sequence[int]) -> dict[str, int]:
        if len(our_shape) != len(self.ours):
            raise ValueError(f"pattern {self} expects {len(self.ours)} axes, got shape {our_shape}")
        return dict(zip(self.ours, our_shape))

    def hf_shape(self, our_shape: Sequence[int]) -> tuple[int, ...]:
        s = self.sizes(our_shape)
        return tuple(math.prod(s[n] for n in g) for g in self.hf_groups)

    def read_block(self, read_hf: Callable[[tuple[slice, ...]], np.ndarray],
                   our_shape: Sequence[int], index: Sequence[slice] | None) -> np.ndarray:
        """Block `index` of our parameter, reading only the HF rows it needs.

        Within each HF axis group only the leading sub-axis is narrowed on read (so the
        read is contiguous); the other sub-axes are narrowed after the reshape.
        """
        sizes = self.sizes(our_shape)
        index = tuple(index) if index is not None else ()
        index = index + (slice(None),) * (len(self.ours) - len(index))
        ranges = {}
        for name, sl in zip(self.ours, index):
            start, stop, step = sl.indices(sizes[name])
            if step != 1:
                raise ValueError(f"strided block {sl} is not supported")
            ranges[name] = (start, stop)
        hf_index, inter_shape, sub_index = [], [], []
        for group in self.hf_groups:
            lead, rest = group[0], group[1:]
            stride = math.prod(sizes[n] for n in rest)
            a, b = ranges[lead]
            hf_index.append(slice(a * stride, b * stride))
            inter_shape += [b - a] + [sizes[n] for n in rest]
            sub_index += [slice(None)] + [slice(*ranges[n]) for n in rest]
        block = np.asarray(read_hf(tuple(hf_index)))
        block = block.reshape(inter_shape)[tuple(sub_index)]
        return block.transpose([self.hf_names.index(n) for n in self.ours])

    def to_hf(self, ours: np.ndarray) -> np.ndarray:
        """Our parameter (a full host array) in the HF tensor's layout."""
        hf_shape = self.hf_shape(ours.shape)
        inter = np.asarray(ours).transpose([self.ours.index(n) for n in self.hf_names])
        return np.ascontiguousarray(inter.reshape(hf_shape))

    def __str__(self):
        left = " ".join(g[0] if len(g) == 1 else "(" + " ".join(g) + ")" for g in self.hf_groups)
        return f"{left} -> {' '.join(self.ours)}"


@functools.lru_cache(maxsize=None)
def parse_pattern(pattern: str) -> AxisPattern:
    left, sep, right = pattern.partition("->")
    if not sep:
        raise ValueError(f"pattern {pattern!r} has no '->'")
    groups: list[tuple[str, ...]] = []
    current: list[str] | None = None
    for tok in left.replace("(", " ( ").replace(")", " ) ").split():
        if tok == "(":
            current = []
        elif tok == ")":
            groups.append(tuple(current))
            current = None
        elif current is not None:
            current.append(tok)
        else:
            groups.append((tok,))
    ours = tuple(right.split())
    flat = [n for g in groups for n in g]
    if sorted(flat) != sorted(ours) or len(set(ours)) != len(ours):
        raise ValueError(f"pattern {pattern!r} must name the same axes on both sides")
    return AxisPattern(tuple(groups), ours)


# Layouts shared by the families.
COPY1 = "a -> a"
COPY2 = "a b -> a b"
LINEAR = "o i -> i o"  # torch nn.Linear weight [out, in] -> kernel [in, out]
HEADS_IN = "(h k) d -> d h k"  # nn.Linear into heads (q/k/v projections)
HEADS_IN_BIAS = "(h k) -> h k"
HEADS_OUT = "d (h k) -> h k d"  # nn.Linear out of heads (output projection)
