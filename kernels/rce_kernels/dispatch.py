"""One entry point for every token-stats implementation."""

from __future__ import annotations

from .reference import TokenStats, token_stats_naive, token_stats_xla

# name -> callable(logits_TxV, targets_T, *, vocab_limit) -> TokenStats
_IMPLS = {
    "xla": token_stats_xla,
    "naive": token_stats_naive,
}


def available_impls() -> tuple[str, ...]:
    return ("auto",) + tuple(_IMPLS)


def resolve_impl(impl: str) -> str:
    """The concrete implementation that ``impl`` names on the current default backend."""
    if impl == "auto":
        return "xla"
    if impl not in _IMPLS:
        raise ValueError(f"unknown token-stats impl {impl!r}; choose one of {available_impls()}")
    return impl


def token_stats(logits_TxV, targets_T, *, vocab_limit=None, impl="auto") -> TokenStats:
    """Token statistics of ``logits_TxV`` [T, V] against ``targets_T`` [T] (see reference.py)."""
    return _IMPLS[resolve_impl(impl)](logits_TxV, targets_T, vocab_limit=vocab_limit)
