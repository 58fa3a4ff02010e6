"""Score profiles at fixed ranks (the paper's Figure 5).

For each chosen rank ``k``: over the scored tokens whose target sits at rank ``k``, the mean of
the ``top_k`` largest probabilities, sorted. Device side: per-batch float32 sums and int32
counts; host side: float64 / int64, like RankStats.
"""

from __future__ import annotations

import dataclasses
import functools
import zipfile

import jax
import jax.numpy as jnp
import numpy as np

from ..io import atomic_path


@functools.partial(jax.jit, static_argnames=("ranks", "top_k"))
def profile_sums(logits_TxV, rank_T, mask_T, *, ranks: tuple[int, ...], top_k: int):
    """``(sums [R, top_k] f32, count [R] int32)`` of one batch's sorted top probabilities."""
    z = logits_TxV.astype(jnp.float32)
    lse = jax.nn.logsumexp(z, axis=-1)
    top, _ = jax.lax.top_k(z, top_k)
    probs = jnp.exp(top - lse[:, None])  # [T, K], sorted descending
    want = jnp.asarray(ranks, jnp.int32)
    sel = (rank_T[None, :] == want[:, None]) & mask_T.astype(bool)[None, :]  # [R, T]
    sums = jnp.einsum("rt,tk->rk", sel.astype(jnp.float32), probs)
    return sums, jnp.sum(sel, axis=1, dtype=jnp.int32)


@dataclasses.dataclass
class ProfileStats:
    """Host accumulator of score profiles for ``ranks``, over the ``top_k`` largest scores."""

    ranks: tuple[int, ...]
    top_k: int
    sums: np.ndarray = None  # float64 [R, top_k]
    count: np.ndarray = None  # int64 [R]

    def __post_init__(self):
        self.ranks = tuple(int(r) for r in self.ranks)
        if not self.ranks or min(self.ranks) < 0 or len(set(self.ranks)) != len(self.ranks):
            raise ValueError(f"profile ranks must be distinct non-negative integers, got {self.ranks}")
        if self.top_k < 1:
            raise ValueError(f"profile top_k must be positive, got {self.top_k}")
        if self.sums is None:
            self.sums = np.zeros((len(self.ranks), self.top_k))
        if self.count is None:
            self.count = np.zeros(len(self.ranks), np.int64)
        self.sums = np.asarray(self.sums, np.float64).reshape(len(self.ranks), self.top_k)
        self.count = np.asarray(self.count, np.int64).reshape(len(self.ranks))

    def add(self, sums_RxK, count_R) -> None:
        sums, count = jax.device_get((sums_RxK, count_R))
        self.sums += np.asarray(sums, np.float64)
        self.count += np.asarray(count, np.int64)

    def to_dict(self) -> dict:
        """``ranks``, ``top_k``, ``count`` and ``mean_sorted_probs`` (zeros where no token)."""
        mean = self.sums / np.maximum(self.count, 1)[:, None]
        return {"ranks": list(self.ranks), "top_k": self.top_k, "count": self.count.tolist(),
                "mean_sorted_probs": mean.tolist()}

    def save(self, path) -> None:
        """Write the state (an evaluation snapshot) atomically as ``.npz``."""
        with atomic_path(path) as tmp, open(tmp, "wb") as f:
            np.savez(f, profile_ranks=np.asarray(self.ranks, np.int64), profile_sums=self.sums,
                     profile_count=self.count)

    @classmethod
    def load(cls, path, top_k: int) -> ProfileStats:
        """Read a state written by ``save``; an unreadable file is a ValueError naming it."""
        try:
            with np.load(path) as z:
                return cls(tuple(z["profile_ranks"].tolist()), top_k, z["profile_sums"],
                           z["profile_count"])
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as e:
            raise ValueError(f"{path}: not a readable score-profile snapshot ({e})") from e
