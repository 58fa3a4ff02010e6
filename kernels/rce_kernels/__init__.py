"""Token-statistics kernels for rce-jax: rank of the target and log-softmax in one pass.

Importable on its own (needs only JAX and chex, whose trace-time shape and dtype checks guard
the entry points). ``reference`` holds the pure-JAX implementations that
the Pallas kernels must match; ``support`` declares what each implementation takes; ``dispatch`` plans, runs and reports
which one ran; ``fold`` is the one tile update of them all; ``mesh`` runs them per shard of a
device mesh; ``fused`` and
its Pallas variants compute the statistics straight from hidden states and the LM head;
``fused_backward`` is the chunked backward of the fused cross-entropy-type losses;
``proxy_loss`` holds the custom-VJP cores of the proxy loss (``rce_jax.losses`` is the public
API); ``rank_sums`` the per-batch sums by rank; ``bench`` is the kernel benchmark
(``python -m rce_kernels.bench``).
"""

from .dispatch import (
    KernelPlan,
    available_impls,
    fused_token_stats,
    plan_fused_token_stats,
    plan_token_stats,
    run_fused_token_stats,
    run_token_stats,
    token_stats,
)
from .fused import fused_token_stats_xla
from .fused_backward import fused_logits_backward_xla
from .reference import TokenStats, token_stats_naive, token_stats_xla
from .mesh import shard_rows
from .support import SUPPORT, Device, UnsupportedShapeError

__all__ = [
    "SUPPORT",
    "Device",
    "KernelPlan",
    "TokenStats",
    "UnsupportedShapeError",
    "available_impls",
    "fused_logits_backward_xla",
    "fused_token_stats",
    "fused_token_stats_xla",
    "plan_fused_token_stats",
    "plan_token_stats",
    "run_fused_token_stats",
    "run_token_stats",
    "shard_rows",
    "token_stats",
    "token_stats_naive",
    "token_stats_xla",
]
