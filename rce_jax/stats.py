"""Sufficient statistics of the rank decomposition (docs/design.md#1-what-is-measured).

Per exact rank ``e`` in ``0..V-1``: the number of scored tokens whose target has that rank and
the sum of their log-probabilities. On the device they are float32/int32 segment sums of one
batch (``batch_rank_sums``); on the host they accumulate in int64/float64 (``RankStats``).
They add across batches, devices, hosts and runs, and the decomposition is computed from them
at the end.
"""

from __future__ import annotations

import dataclasses
import json
import os
import zipfile

import jax
import jax.numpy as jnp
import numpy as np

from rce_kernels.rank_sums import BatchRankSums, batch_rank_sums  # noqa: F401 (re-exported)

from .io import atomic_path

FILE_FORMAT = "rce-jax/RankStats"
# How ranks treat ties, recorded with every statistics: a tie counts in the target's favour.
TIE_RULE = "strictly-greater"
FILE_VERSION = 1


class StatsFileError(ValueError):
    """A RankStats file that is missing, corrupt, of another format or of another version."""


def _check_flags(n_invalid: int, n_neginf: int, where: str) -> None:
    if n_invalid:
        raise ValueError(
            f"{where}: {n_invalid} scored token(s) have NaN or +inf logits, a target outside "
            "the vocabulary or a rank that does not fit these statistics' vocab_size; the "
            "decomposition is undefined for them"
        )
    if n_neginf:
        raise ValueError(
            f"{where}: {n_neginf} scored token(s) have a target logit of -inf (probability "
            "exactly 0), so the cross-entropy is infinite"
        )


@dataclasses.dataclass
class RankStats:
    """Host-side sufficient statistics: ``count[e]`` (int64) and ``sum_logp[e]`` (float64).

    ``meta`` holds the settings the statistics were taken under (tie rule, dtype, vocab
    limit, ...); merging refuses statistics whose shared settings disagree.
    """

    vocab_size: int
    count: np.ndarray
    sum_logp: np.ndarray
    n_tied: int = 0
    meta: dict = dataclasses.field(default_factory=dict)

    def __post_init__(self):
        if int(self.vocab_size) < 1:
            raise ValueError(f"vocab_size must be positive, got {self.vocab_size}")
        self.vocab_size = int(self.vocab_size)
        self.count = np.asarray(self.count, dtype=np.int64)
        self.sum_logp = np.asarray(self.sum_logp, dtype=np.float64)
        if self.count.shape != (self.vocab_size,) or self.sum_logp.shape != (self.vocab_size,):
            raise ValueError(
                f"count and sum_logp must have shape ({self.vocab_size},), got "
                f"{self.count.shape} and {self.sum_logp.shape}"
            )
        if (self.count < 0).any():
            raise ValueError("count has negative entries")
        self.n_tied = int(self.n_tied)
        self.meta = dict(self.meta)

    # ---- construction ---------------------------------------------------------------
    @classmethod
    def zeros(cls, vocab_size: int, meta: dict | None = None) -> RankStats:
        return cls(vocab_size, np.zeros(vocab_size, np.int64), np.zeros(vocab_size), 0, meta or {})

    @classmethod
    def from_token_stats(cls, logp, rank, ties, mask=None, *, vocab_size: int, meta=None):
        """Statistics of per-token outputs (any leading shape), through the device path."""
        rank = jnp.asarray(rank).reshape(-1)
        mask = jnp.ones(rank.shape, bool) if mask is None else jnp.asarray(mask).reshape(-1)
        if mask.shape != rank.shape:
            raise ValueError(f"mask has {mask.size} entries but there are {rank.size} tokens")
        stats = cls.zeros(vocab_size, meta)
        sums = batch_rank_sums(
            jnp.asarray(logp).reshape(-1),
            rank,
            jnp.asarray(ties).reshape(-1),
            mask,
            vocab_size=vocab_size,
        )
        stats.add_batch(sums)
        return stats

    def add_batch(self, sums: BatchRankSums, *, where: str = "batch") -> None:
        """Accumulate one batch's device sums (int64 / float64 on the host).

        Raises ValueError, leaving the statistics unchanged, if the batch holds invalid tokens.
        """
        count, total, n_tied, n_invalid, n_neginf = jax.device_get(tuple(sums))
        _check_flags(int(n_invalid), int(n_neginf), where)
        if np.shape(count) != (self.vocab_size,):
            raise ValueError(
                f"{where}: batch sums have vocabulary {np.shape(count)}, these statistics "
                f"{self.vocab_size}"
            )
        self.count += np.asarray(count, np.int64)
        self.sum_logp += np.asarray(total, np.float64)
        self.n_tied += int(n_tied)

    # ---- algebra ---------------------------------------------------------------------
    @property
    def n_tokens(self) -> int:
        return int(self.count.sum())

    def merge(self, other: RankStats) -> RankStats:
        """Statistics of the union of the two token sets (neither operand is modified)."""
        if not isinstance(other, RankStats):
            raise TypeError(f"can only merge RankStats, not {type(other).__name__}")
        if other.vocab_size != self.vocab_size:
            raise ValueError(
                f"cannot merge RankStats of vocab size {self.vocab_size} and {other.vocab_size}"
            )
        clash = {k for k in self.meta.keys() & other.meta.keys() if self.meta[k] != other.meta[k]}
        if clash:
            detail = ", ".join(f"{k}: {self.meta[k]!r} vs {other.meta[k]!r}" for k in sorted(clash))
            raise ValueError(f"cannot merge RankStats taken under different settings ({detail})")
        return RankStats(
            self.vocab_size,
            self.count + other.count,
            self.sum_logp + other.sum_logp,
            self.n_tied + other.n_tied,
            {**other.meta, **self.meta},
        )

    __add__ = merge

    def decompose(self):
        """The decomposition CE = EE + SA - Conf of these statistics (float64)."""
        from .decomposition import Decomposition

        return Decomposition.from_stats(self)

    def sparse(self) -> dict:
        """The occurring ranks with their counts and sums of log s (JSON-friendly lists)."""
        ranks = np.flatnonzero(self.count)
        return {
            "ranks": ranks.tolist(),
            "count": self.count[ranks].tolist(),
            "sum_logp": self.sum_logp[ranks].tolist(),
        }

    # ---- file format -------------------------------------------------------------------
    def save(self, path) -> None:
        """Write the versioned ``.npz`` file format (see ``load``), atomically."""
        ranks = np.flatnonzero(self.count)
        with atomic_path(path) as tmp:
            with open(tmp, "wb") as f:
                np.savez_compressed(
                    f,
                    format=np.array(FILE_FORMAT),
                    version=np.array(FILE_VERSION, np.int64),
                    vocab_size=np.array(self.vocab_size, np.int64),
                    ranks=ranks.astype(np.int64),
                    count=self.count[ranks],
                    sum_logp=self.sum_logp[ranks],
                    n_tied=np.array(self.n_tied, np.int64),
                    meta=np.array(json.dumps(self.meta, sort_keys=True)),
                )

    @classmethod
    def load(cls, path) -> RankStats:
        """Read a file written by ``save``.

        Format ``rce-jax/RankStats`` version 1: a NumPy ``.npz`` archive (zip, CRC-checked) with
        ``format`` (str), ``version`` (int64), ``vocab_size`` (int64), ``ranks`` (int64 [K],
        strictly increasing occurring ranks), ``count`` (int64 [K], positive), ``sum_logp``
        (float64 [K], finite), ``n_tied`` (int64) and ``meta`` (a JSON object as str).
        """
        path = os.fspath(path)
        if not os.path.exists(path):
            raise StatsFileError(f"{path}: no such RankStats file")
        try:
            with np.load(path, allow_pickle=False) as z:
                fields = {k: z[k] for k in z.files}
        except (zipfile.BadZipFile, OSError, ValueError, EOFError, KeyError) as e:
            raise StatsFileError(f"{path}: not a readable RankStats file ({e})") from e
        fmt = str(fields.get("format", ""))
        if fmt != FILE_FORMAT:
            raise StatsFileError(f"{path}: format {fmt!r} is not {FILE_FORMAT!r}")
        version = int(fields.get("version", -1))
        if version != FILE_VERSION:
            raise StatsFileError(
                f"{path}: RankStats file version {version}; this rce-jax reads version {FILE_VERSION}"
            )
        missing = {"vocab_size", "ranks", "count", "sum_logp", "n_tied", "meta"} - fields.keys()
        if missing:
            raise StatsFileError(f"{path}: missing fields {sorted(missing)}")
        vocab_size = int(fields["vocab_size"])
        ranks, count, total = fields["ranks"], fields["count"], fields["sum_logp"]
        problems = []
        if not (ranks.ndim == count.ndim == total.ndim == 1 and ranks.size == count.size == total.size):
            problems.append("ranks, count and sum_logp differ in shape")
        elif ranks.size and (ranks.min() < 0 or ranks.max() >= vocab_size or (np.diff(ranks) <= 0).any()):
            problems.append(f"ranks are not strictly increasing within [0, {vocab_size})")
        elif (count <= 0).any() or not np.isfinite(total).all():
            problems.append("non-positive counts or non-finite sums")
        try:
            meta = json.loads(str(fields["meta"]))
        except json.JSONDecodeError:
            problems.append("meta is not JSON")
        else:
            if not isinstance(meta, dict):
                problems.append("meta is not a JSON object")
        if int(fields["n_tied"]) < 0:
            problems.append("negative n_tied")
        if problems:
            raise StatsFileError(f"{path}: corrupt RankStats file: {'; '.join(problems)}")
        full_count = np.zeros(vocab_size, np.int64)
        full_sum = np.zeros(vocab_size, np.float64)
        full_count[ranks] = count
        full_sum[ranks] = total
        return cls(vocab_size, full_count, full_sum, int(fields["n_tied"]), meta)
