"""The registry of supported families: what each family module provides."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable
from typing import Any

from rce_jax.models.config import FAMILIES, ModelConfig, UnsupportedConfigError
from rce_jax.models.mapping import COPY1, WeightEntry


@dataclasses.dataclass(frozen=True)
class FamilySpec:
    """Everything family-specific outside the shared transformer.

    aliases: (regex, replacement) rules turning checkpoint tensor names into the canonical
      names of the weight map (e.g. GPT-2 checkpoints without the `transformer.` prefix).
    head_name: a tied model's checkpoint may still hold this tensor (a copy of the
      embedding); it is skipped, as transformers does.
    ignored: regexes of checkpoint entries that are buffers, not weights (causal-mask
      buffers, cached rotary frequencies); they are skipped, never reported as unexpected.
    """

    family: str
    architecture: str
    config_from_hf: Callable[[dict[str, Any]], ModelConfig]
    config_to_hf: Callable[[ModelConfig], dict[str, Any]]
    weight_map: Callable[[ModelConfig], list[WeightEntry]]
    head_name: str = "lm_head.weight"  # canonical name of an untied LM head
    aliases: tuple[tuple[str, str], ...] = ()
    ignored: tuple[str, ...] = ()

    def canonical_name(self, name: str) -> str:
        for pattern, repl in self.aliases:
            new, n = re.subn(pattern, repl, name)
            if n:
                return new
        return name

    def is_ignored(self, name: str) -> bool:
        return any(re.search(p, name) for p in self.ignored)


def norm_entries(ours: str, hf: str, *, bias: bool = True) -> list[WeightEntry]:
    """scale/bias of a norm stored as HF `weight`/`bias`."""
    out = [WeightEntry(f"{ours}.scale", f"{hf}.weight", COPY1)]
    if bias:
        out.append(WeightEntry(f"{ours}.bias", f"{hf}.bias", COPY1))
    return out


def linear_entries(ours: str, hf: str, pattern: str, *, bias: bool,
                   bias_pattern: str = COPY1) -> list[WeightEntry]:
    out = [WeightEntry(f"{ours}.kernel", f"{hf}.weight", pattern)]
    if bias:
        out.append(WeightEntry(f"{ours}.bias", f"{hf}.bias", bias_pattern))
    return out


def family_spec(family: str) -> FamilySpec:
    from rce_jax.models import gpt2, gpt_neox, llama, opt

    specs = {s.family: s for s in (gpt2.SPEC, gpt_neox.SPEC, opt.SPEC, *llama.SPECS)}
    if family not in specs:
        raise UnsupportedConfigError(f"family {family!r} is not one of {FAMILIES}")
    return specs[family]
