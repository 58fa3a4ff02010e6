"""Token-statistics kernels for rce-jax: rank of the target and log-softmax in one pass.

Importable on its own (needs only JAX). ``reference`` holds the pure-JAX implementations that
the Pallas kernels must match; ``dispatch`` picks an implementation per backend; ``fused`` and
its Pallas variants compute the statistics straight from hidden states and the LM head;
``fused_backward`` is the chunked backward of the fused cross-entropy-type losses;
``proxy_loss`` holds the custom-VJP cores of the proxy loss (``rce_jax.losses`` is the public
API); ``rank_sums`` the per-batch sums by rank; ``bench`` is the kernel benchmark
(``python -m rce_kernels.bench``).
"""

from .dispatch import available_impls, fused_token_stats, resolve_impl, token_stats
from .fused import fused_token_stats_xla
from .fused_backward import fused_logits_backward_xla
from .reference import TokenStats, token_stats_naive, token_stats_xla
from .token_stats_gpu import UnsupportedShapeError

__all__ = [
    "TokenStats",
    "UnsupportedShapeError",
    "available_impls",
    "fused_logits_backward_xla",
    "fused_token_stats",
    "fused_token_stats_xla",
    "resolve_impl",
    "token_stats",
    "token_stats_naive",
    "token_stats_xla",
]
