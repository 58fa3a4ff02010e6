"""The exact decomposition CE = EE + SA - Conf (docs/design.md#1-what-is-measured), computed in float64.

With ``p_e = N_e / N``, ``Q_e = exp(mean log s over rank e)``, ``C = sum_e Q_e``, ``q = Q / C``:
``EE = -sum p log p``, ``SA = KL(p || q)``, ``Conf = log C``, sums over the ranks that occur.
"""

from __future__ import annotations

import dataclasses

import numpy as np
from scipy.special import logsumexp


@dataclasses.dataclass(frozen=True, repr=False)
class Decomposition:
    """Cross-entropy and its three parts, with the rank distributions behind them.

    ``p``, ``q`` and ``log_Q`` are dense over ranks ``0..V-1``; ranks with no token have
    ``p = q = 0`` and ``log_Q = nan``.
    """

    ce: float
    ee: float
    sa: float
    conf: float
    n_tokens: int
    vocab_size: int
    p: np.ndarray
    q: np.ndarray
    log_Q: np.ndarray
    log_C: float

    @classmethod
    def from_stats(cls, stats) -> Decomposition:
        n = stats.n_tokens
        if n == 0:
            raise ValueError("empty RankStats: no scored tokens, the decomposition is undefined")
        occ = np.flatnonzero(stats.count)
        count = stats.count[occ].astype(np.float64)
        p_occ = count / n
        log_p_occ = np.log(p_occ)
        log_Q_occ = stats.sum_logp[occ] / count
        log_C = float(logsumexp(log_Q_occ))
        log_q_occ = log_Q_occ - log_C
        ee = float(-np.sum(p_occ * log_p_occ))
        sa = float(np.sum(p_occ * (log_p_occ - log_q_occ)))
        ce = float(-np.sum(stats.sum_logp[occ]) / n)
        V = stats.vocab_size
        p = np.zeros(V)
        q = np.zeros(V)
        log_Q = np.full(V, np.nan)
        p[occ], q[occ], log_Q[occ] = p_occ, np.exp(log_q_occ), log_Q_occ
        return cls(ce=ce, ee=ee, sa=sa, conf=log_C, n_tokens=int(n), vocab_size=V,
                   p=p, q=q, log_Q=log_Q, log_C=log_C)

    @property
    def ranks(self) -> np.ndarray:
        """The ranks that occur (those with at least one token)."""
        return np.flatnonzero(self.p)

    @property
    def ee_share(self) -> float:
        """EE / CE: the share of the cross-entropy that error-entropy accounts for (NaN when
        CE is 0, i.e. every target had probability 1)."""
        return self.ee / self.ce if self.ce != 0 else float("nan")

    @property
    def top1(self) -> float:
        """p_0: the share of tokens whose target is ranked first (top-1 accuracy, ties won)."""
        return float(self.p[0])

    @property
    def identity_residual(self) -> float:
        """CE - (EE + SA - Conf): zero up to float64 rounding."""
        return self.ce - (self.ee + self.sa - self.conf)

    def to_dict(self) -> dict:
        """Scalars plus the sparse rank distributions (JSON-friendly)."""
        occ = self.ranks
        return {
            "n_tokens": self.n_tokens,
            "vocab_size": self.vocab_size,
            "ce": self.ce,
            "ee": self.ee,
            "sa": self.sa,
            "conf": self.conf,
            "log_C": self.log_C,
            "ee_share": self.ee_share,
            "top1": self.top1,
            "n_ranks": int(occ.size),
            "ranks": occ.tolist(),
            "p": self.p[occ].tolist(),
            "q": self.q[occ].tolist(),
            "log_Q": self.log_Q[occ].tolist(),
        }

    def __repr__(self) -> str:
        # Every ``name=value`` printed is the attribute of that name (tests/test_decompose.py).
        return (
            f"Decomposition(ce={self.ce:.6f}, ee={self.ee:.6f}, sa={self.sa:.6f}, "
            f"conf={self.conf:.6f}, ee_share={self.ee_share:.4f}, top1={self.top1:.4f}, "
            f"n_tokens={self.n_tokens}, vocab_size={self.vocab_size}; "
            f"{self.ranks.size} ranks occur; ce = ee + sa - conf)"
        )
