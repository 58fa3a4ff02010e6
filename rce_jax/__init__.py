"""rce-jax: rank-based decomposition of language-model cross-entropy.

CE = EE + SA - Conf, through the rank of the correct token (arXiv 2510.04067).
"""

from .decomposition import Decomposition
from .losses import ProxyLossAux, proxy_loss, proxy_loss_fused
from .scoring import TokenStats, decompose, token_stats, token_stats_fused
from .stats import BatchRankSums, RankStats, StatsFileError, batch_rank_sums

__version__ = "0.1.0"

__all__ = [
    "BatchRankSums",
    "Decomposition",
    "ProxyLossAux",
    "RankStats",
    "StatsFileError",
    "TokenStats",
    "batch_rank_sums",
    "decompose",
    "proxy_loss",
    "proxy_loss_fused",
    "token_stats",
    "token_stats_fused",
]
