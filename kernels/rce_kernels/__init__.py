"""Token-statistics kernels for rce-jax: rank of the target and log-softmax in one pass.

Importable on its own (needs only JAX). ``reference`` holds the pure-JAX implementations that
the Pallas kernels must match.
"""

from .dispatch import available_impls, resolve_impl, token_stats
from .reference import TokenStats, token_stats_naive, token_stats_xla

__all__ = [
    "TokenStats",
    "available_impls",
    "resolve_impl",
    "token_stats",
    "token_stats_naive",
    "token_stats_xla",
]
