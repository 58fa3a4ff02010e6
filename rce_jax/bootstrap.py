"""A Poisson bootstrap over documents, gathered in the evaluation's single pass (docs/design.md#8-uncertainty).

In replicate ``b`` document ``d`` carries the weight ``w_bd ~ Poisson(1)``, drawn from a hash of
(the document's key, ``b``, the seed): any host, batch order, packing, device count or resumed
run draws the same weight for the same document, and two models scored on the same corpus share
the weights of every replicate, so their replicates pair. The key is a hash of the document's
text (and of how many identical texts came before it), so models with different tokenizers pair
too.

Per replicate and per occurring rank ``e`` the accumulator keeps the weighted count
``sum_d w_bd N_de`` and the weighted sum of log s ``sum_d w_bd S_de``: the RankStats of the
resampled corpus. They add across batches and runs like RankStats, in memory
O(replicates x distinct ranks). The decomposition of each replicate gives CE, EE, SA, Conf and the
EE share per replicate, hence percentile intervals.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import zipfile
from collections.abc import Iterable, Sequence

import numpy as np
from scipy import sparse
from scipy.special import logsumexp

from .io import atomic_path

FILE_FORMAT = "rce-jax/BootstrapStats"
FILE_VERSION = 1
METRICS = ("ce", "ee", "sa", "conf", "ee_share")
DEFAULT_REPLICATES = 200
DEFAULT_LEVEL = 0.95
DEFAULT_SEED = 0

_MASK64 = (1 << 64) - 1
# P(X <= k) for X ~ Poisson(1), k = 0..19. The tail left out, P(X >= 20) = 1.6e-19, lies below a
# 53-bit uniform's step (2^-53 = 1.1e-16); the float64 cumsum reaches exactly 1.0, so draws are 0..19.
_POISSON1_CDF = np.cumsum([math.exp(-1.0) / math.factorial(k) for k in range(20)])


def document_keys(texts: Iterable[str]) -> np.ndarray:
    """uint64 key per document: a hash of its UTF-8 text and of the number of identical texts
    before it (two copies of a document are two resampling units)."""
    seen: dict[bytes, int] = {}
    keys = []
    for text in texts:
        digest = hashlib.blake2b(text.encode("utf-8"), digest_size=16).digest()
        k = seen.get(digest, 0)
        seen[digest] = k + 1
        h = hashlib.blake2b(digest + k.to_bytes(8, "little"), digest_size=8).digest()
        keys.append(int.from_bytes(h, "little"))
    return np.array(keys, dtype=np.uint64)


def _mix64(x: np.ndarray) -> np.ndarray:
    """SplitMix64's finaliser on uint64 arrays (wrapping arithmetic)."""
    x = np.asarray(x, np.uint64)
    with np.errstate(over="ignore"):
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


def poisson_weights(keys_D: np.ndarray, replicates: int, seed: int = DEFAULT_SEED) -> np.ndarray:
    """int64 ``[replicates, D]``: ``w_bd ~ Poisson(1)``, a pure function of (key, b, seed)."""
    keys_D = np.asarray(keys_D, np.uint64)
    b = np.arange(replicates, dtype=np.uint64)
    with np.errstate(over="ignore"):
        salt = _mix64(b + np.uint64((int(seed) * 0x9E3779B97F4A7C15) & _MASK64))
        h = _mix64(keys_D[None, :] ^ salt[:, None])
    u = (h >> np.uint64(11)).astype(np.float64) * (1.0 / (1 << 53))
    return np.searchsorted(_POISSON1_CDF, u, side="right").astype(np.int64)


class BootstrapStats:
    """Weighted per-rank counts and sums of log s of ``replicates`` Poisson-resampled corpora.

    Columns are the occurring ranks in order of first appearance (``col_of_rank`` maps a rank to
    its column); ``count_RxK`` (int64) and ``sum_logp_RxK`` (float64) grow by doubling.
    """

    def __init__(self, vocab_size: int, replicates: int = DEFAULT_REPLICATES, *,
                 level: float = DEFAULT_LEVEL, seed: int = DEFAULT_SEED):
        if int(vocab_size) < 1:
            raise ValueError(f"vocab_size must be positive, got {vocab_size}")
        if int(replicates) < 2:
            raise ValueError(f"--bootstrap needs at least 2 replicates, got {replicates}")
        if not 0.0 < float(level) < 1.0:
            raise ValueError(f"interval level must lie in (0, 1), got {level}")
        if int(seed) < 0:
            raise ValueError(f"bootstrap seed must be >= 0, got {seed}")
        self.vocab_size = int(vocab_size)
        self.replicates = int(replicates)
        self.level = float(level)
        self.seed = int(seed)
        self.col_of_rank = np.full(self.vocab_size, -1, np.int64)
        self.ranks = np.zeros(0, np.int64)  # rank of each column
        self._count = np.zeros((self.replicates, 0), np.int64)
        self._sum = np.zeros((self.replicates, 0), np.float64)

    @property
    def settings(self) -> dict:
        return {"replicates": self.replicates, "level": self.level, "seed": self.seed}

    @property
    def n_ranks(self) -> int:
        return int(self.ranks.size)

    @property
    def count_RxK(self) -> np.ndarray:
        return self._count[:, :self.n_ranks]

    @property
    def sum_logp_RxK(self) -> np.ndarray:
        return self._sum[:, :self.n_ranks]

    def _columns(self, ranks: np.ndarray) -> np.ndarray:
        """Columns of ``ranks`` (distinct), opening new ones as needed."""
        new = ranks[self.col_of_rank[ranks] < 0]
        if new.size:
            k = self.n_ranks
            need = k + new.size
            if need > self._count.shape[1]:
                cap = max(need, 2 * self._count.shape[1], 64)
                grow = cap - self._count.shape[1]
                self._count = np.concatenate([self._count, np.zeros((self.replicates, grow), np.int64)], 1)
                self._sum = np.concatenate([self._sum, np.zeros((self.replicates, grow))], 1)
            self.col_of_rank[new] = np.arange(k, need)
            self.ranks = np.concatenate([self.ranks, new])
        return self.col_of_rank[ranks]

    def add_tokens(self, rank_T, logp_T, key_T) -> None:
        """Fold scored tokens in: their ranks, log-probabilities and document keys (uint64)."""
        rank_T = np.asarray(rank_T, np.int64).reshape(-1)
        logp_T = np.asarray(logp_T, np.float64).reshape(-1)
        key_T = np.asarray(key_T, np.uint64).reshape(-1)
        if not rank_T.shape == logp_T.shape == key_T.shape:
            raise ValueError("ranks, log-probabilities and document keys differ in length")
        if rank_T.size == 0:
            return
        if rank_T.min() < 0 or rank_T.max() >= self.vocab_size:
            raise ValueError(f"ranks outside [0, {self.vocab_size})")
        docs, doc_of_token = np.unique(key_T, return_inverse=True)
        ranks, rank_of_token = np.unique(rank_T, return_inverse=True)
        shape = (docs.size, ranks.size)
        n_DxK = sparse.csr_matrix((np.ones(rank_T.size), (doc_of_token, rank_of_token)), shape=shape)
        s_DxK = sparse.csr_matrix((logp_T, (doc_of_token, rank_of_token)), shape=shape)
        w_DxR = poisson_weights(docs, self.replicates, self.seed).T.astype(np.float64)
        cols = self._columns(ranks)
        # Counts are integers below 2^53, exact in float64.
        self._count[:, cols] += np.rint(np.asarray(n_DxK.T @ w_DxR).T).astype(np.int64)
        self._sum[:, cols] += np.asarray(s_DxK.T @ w_DxR).T

    # ---- algebra ---------------------------------------------------------------------
    def _check_compatible(self, other: BootstrapStats) -> None:
        if not isinstance(other, BootstrapStats):
            raise TypeError(f"can only merge BootstrapStats, not {type(other).__name__}")
        mine = (self.vocab_size, self.replicates, self.seed, self.level)
        theirs = (other.vocab_size, other.replicates, other.seed, other.level)
        if mine != theirs:
            raise ValueError("cannot merge bootstrap statistics of different (vocab size, replicates, "
                             f"seed, level): {mine} vs {theirs}")

    def merge(self, other: BootstrapStats) -> BootstrapStats:
        """Statistics of the union of the two token sets (neither operand is modified)."""
        self._check_compatible(other)
        out = self.copy()
        cols = out._columns(other.ranks)
        out._count[:, cols] += other.count_RxK
        out._sum[:, cols] += other.sum_logp_RxK
        return out

    __add__ = merge

    def copy(self) -> BootstrapStats:
        out = BootstrapStats(self.vocab_size, self.replicates, level=self.level, seed=self.seed)
        out.col_of_rank = self.col_of_rank.copy()
        out.ranks = self.ranks.copy()
        out._count = self.count_RxK.copy()
        out._sum = self.sum_logp_RxK.copy()
        return out

    def dense(self) -> tuple[np.ndarray, np.ndarray]:
        """``(count_RxV, sum_logp_RxV)`` over every rank (for tests and small vocabularies)."""
        count = np.zeros((self.replicates, self.vocab_size), np.int64)
        total = np.zeros((self.replicates, self.vocab_size))
        count[:, self.ranks] = self.count_RxK
        total[:, self.ranks] = self.sum_logp_RxK
        return count, total

    # ---- results ---------------------------------------------------------------------
    def replicate_metrics(self) -> dict[str, np.ndarray]:
        """CE, EE, SA, Conf and EE/CE of every replicate (NaN for a replicate with no token)."""
        return decompose_replicates(self.count_RxK, self.sum_logp_RxK)

    def summary(self, point: dict | None = None) -> dict:
        """The ``intervals`` entry of a result: settings, per-metric percentile intervals and
        standard errors, and the per-replicate values (so fits can pair replicates)."""
        values = self.replicate_metrics()
        out = {**self.settings, "method": "Poisson(1) bootstrap over documents, percentile intervals",
               "n_degenerate_replicates": int(np.isnan(values["ce"]).sum())}
        for k in METRICS:
            lo, hi = percentile_interval(values[k], self.level)
            out[k] = {"lo": lo, "hi": hi, "se": float(np.nanstd(values[k], ddof=1))}
            if point is not None and k in point:
                # Bootstrap estimate of the plug-in estimator's bias. EE (an entropy of counts) is
                # biased low when ranks hold few tokens; a bias comparable to the interval's
                # half-width puts the estimate outside the percentile interval.
                out[k]["estimate"] = float(point[k])
                out[k]["bias"] = float(np.nanmean(values[k]) - point[k])
        out["replicates_values"] = {k: [None if math.isnan(v) else float(v) for v in values[k]]
                                    for k in METRICS}
        return out

    # ---- file format -------------------------------------------------------------------
    def save(self, path) -> None:
        """Write the versioned ``.npz`` format atomically (columns sorted by rank). Not compressed:
        the float64 sums do not compress, and zlib made each snapshot of 200 x 1024 cost 0.65 s."""
        order = np.argsort(self.ranks)
        with atomic_path(path) as tmp:
            with open(tmp, "wb") as f:
                np.savez(
                    f, format=np.array(FILE_FORMAT), version=np.array(FILE_VERSION, np.int64),
                    vocab_size=np.array(self.vocab_size, np.int64),
                    settings=np.array(json.dumps(self.settings, sort_keys=True)),
                    ranks=self.ranks[order], count=self.count_RxK[:, order],
                    sum_logp=self.sum_logp_RxK[:, order])

    @classmethod
    def load(cls, path) -> BootstrapStats:
        """Read a file written by ``save`` (``ValueError`` naming the file if it is not one)."""
        path = os.fspath(path)
        try:
            with np.load(path, allow_pickle=False) as z:
                f = {k: z[k] for k in z.files}
            if str(f["format"]) != FILE_FORMAT or int(f["version"]) != FILE_VERSION:
                raise ValueError(f"format {str(f['format'])!r} version {int(f['version'])}")
            s = json.loads(str(f["settings"]))
            out = cls(int(f["vocab_size"]), s["replicates"], level=s["level"], seed=s["seed"])
            ranks = f["ranks"].astype(np.int64)
            if f["count"].shape != (out.replicates, ranks.size) or f["sum_logp"].shape != f["count"].shape:
                raise ValueError("arrays do not match the replicates and ranks")
            out._columns(ranks)
            out._count[:, :ranks.size] = f["count"]
            out._sum[:, :ranks.size] = f["sum_logp"]
        except (OSError, KeyError, zipfile.BadZipFile, EOFError, ValueError, IndexError) as e:
            # ValueError covers json.JSONDecodeError and the checks above
            raise ValueError(f"{path}: not a readable bootstrap statistics file ({e})") from e
        return out


def decompose_replicates(count_RxK: np.ndarray, sum_logp_RxK: np.ndarray) -> dict[str, np.ndarray]:
    """The decomposition of each row's per-rank (count, sum of log s), vectorised in float64."""
    n = np.asarray(count_RxK, np.float64)
    s = np.asarray(sum_logp_RxK, np.float64)
    occ = n > 0
    total = n.sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        p = n / total[:, None]
        log_p = np.where(occ, np.log(np.where(occ, p, 1.0)), 0.0)
        log_Q = np.where(occ, s / np.where(occ, n, 1.0), -np.inf)
        log_C = logsumexp(log_Q, axis=1)
        ee = -np.sum(np.where(occ, p * log_p, 0.0), axis=1)
        sa = np.sum(np.where(occ, p * (log_p - log_Q + log_C[:, None]), 0.0), axis=1)
        ce = -s.sum(axis=1) / total
        share = np.where(ce != 0, ee / ce, np.nan)
    empty = total == 0
    out = {"ce": ce, "ee": ee, "sa": sa, "conf": log_C, "ee_share": share}
    return {k: np.where(empty, np.nan, v) for k, v in out.items()}


def percentile_interval(values: Sequence[float], level: float) -> tuple[float, float]:
    """The central ``level`` percentile interval of the finite values (NaN, NaN if none)."""
    v = np.asarray([x for x in values if x is not None], np.float64)
    v = v[np.isfinite(v)]
    if v.size == 0:
        return math.nan, math.nan
    tail = 50.0 * (1.0 - level)
    lo, hi = np.percentile(v, [tail, 100.0 - tail])
    return float(lo), float(hi)
