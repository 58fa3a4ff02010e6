"""``EvalJob``: everything ``rce-jax eval`` does, as one typed config (its ``--config`` file).

    models: [gpt2=/data/hf/gpt2, /data/hf/gpt2-medium]   # [NAME=]DIR, as --model
    data: [python-docs@all]                             # [NAME=]SPEC, as --data
    out: results/
    settings: {context_length: 1024, batch_size: 8}     # rce_jax.evaluate.EvalConfig

Every flag of ``rce-jax eval`` but the run-time ones (``--no-progress``, ``--distributed``)
is one key of this schema (``commands/eval.py`` registers each flag with its key as ``dest``);
docs/config.md has the schema and the precedence (defaults < file < ``--set`` < flags).
"""

from __future__ import annotations

import dataclasses

from ..config import REQUIRED, require
from .runner import EvalConfig


@dataclasses.dataclass(frozen=True, kw_only=True)
class EvalJob:
    """Every model of ``models`` on every corpus of ``data``, one result file each under ``out``
    (the other fields are ``rce_jax.evaluate.evaluate``'s keyword arguments)."""

    models: tuple[str, ...] = ()
    data: tuple[str, ...] = ()
    out: str | None = None
    tokenizer: str | None = None  # a tokenizer folder instead of each model's own
    family: str | None = None  # family label in the scaling fits
    split: str | None = None  # split of the corpora given without @split
    cache_dir: str | None = None  # token cache folder
    force: bool = False  # recompute existing results
    save_stats: bool = False  # also write each result's RankStats file
    settings: EvalConfig  # the numbers' settings, recorded in each result

    def __post_init__(self):
        for key in ("models", "data", "out"):
            require(bool(getattr(self, key)), key, REQUIRED)
