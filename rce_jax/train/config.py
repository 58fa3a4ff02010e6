"""The training configuration: typed dataclasses, loaded from YAML/JSON, overridable by key.

    config = load_config("run.yaml", overrides=["optim.lr=3e-4", "steps=500"])
    config = TrainConfig.from_dict({"model": {"preset": "demo-3"}, "steps": 100})

Every value is checked on construction; a bad one raises ``ConfigError`` (a ValueError) that
names its dotted key (``optim.lr``), what was expected and what was given. Loading, overrides
and the type conversion are the one loader's, ``rce_jax.config`` (docs/config.md).
"""

from __future__ import annotations

import dataclasses
from typing import Any

from ..config import ConfigError, apply_override, dump_yaml, from_dict, load, to_dict
from ..config import require as _require

__all__ = ["ConfigError", "DataSection", "EvalSection", "LossSection", "ModelSection", "OptimSection",
           "TokenizerSection", "TrainConfig", "apply_override", "diff_keys", "dump_yaml", "identity",
           "load_config"]

DTYPES = ("float32", "bfloat16")
LOSS_HEADS = ("auto", "materialised", "fused")


@dataclasses.dataclass(frozen=True)
class ModelSection:
    """The architecture: a preset name (``rce_jax.train.presets``) or a Hugging Face config
    (a config.json path, a model folder, or an inline dict), plus config.json keys to override.
    ``vocab_size``, ``max_position_embeddings`` and the BOS/EOS ids of a preset come from the
    tokenizer and the context length."""

    preset: str | None = None
    hf_config: Any = None  # str (path) or dict
    overrides: dict = dataclasses.field(default_factory=dict)
    attention_impl: str = "einsum"

    def check(self, key: str) -> None:
        _require((self.preset is None) != (self.hf_config is None), key,
                 "give exactly one of 'preset' or 'hf_config'")
        _require(self.hf_config is None or isinstance(self.hf_config, (str, dict)),
                 f"{key}.hf_config", f"expected a path or a dict, got {type(self.hf_config).__name__}")
        _require(self.attention_impl in ("einsum", "xla", "cudnn"), f"{key}.attention_impl",
                 f"expected einsum, xla or cudnn, got {self.attention_impl!r}")
        if self.preset is not None:
            from .presets import PRESETS

            _require(self.preset in PRESETS, f"{key}.preset",
                     f"unknown preset {self.preset!r}; known: {', '.join(PRESETS)}")


@dataclasses.dataclass(frozen=True)
class TokenizerSection:
    """``path``: a Hugging Face tokenizer folder. Without it, a byte-level BPE of ``vocab_size``
    entries (plus ``<s>``/``</s>``) is trained on ``corpora`` (default: the training corpora)
    and cached by fingerprint under ``cache_dir``."""

    path: str | None = None
    vocab_size: int = 2048
    min_frequency: int = 2
    corpora: list[str] | None = None
    cache_dir: str | None = None

    def check(self, key: str) -> None:
        _require(self.vocab_size >= 260, f"{key}.vocab_size",
                 f"must be at least 260 (256 bytes + specials), got {self.vocab_size}")
        _require(self.min_frequency >= 1, f"{key}.min_frequency", f"must be >= 1, got {self.min_frequency}")
        _require(self.corpora is None or len(self.corpora) > 0, f"{key}.corpora", "must not be empty")


@dataclasses.dataclass(frozen=True)
class DataSection:
    """Corpus specs (``rce_jax.data.load_corpus``) for training and for held-out evaluation."""

    train: list[str] = dataclasses.field(default_factory=lambda: ["python-docs@train", "python-code@train"])
    eval: list[str] = dataclasses.field(default_factory=lambda: ["python-docs@heldout", "python-code@heldout"])
    text_field: str = "text"
    cache_dir: str | None = None

    def check(self, key: str) -> None:
        _require(len(self.train) > 0, f"{key}.train", "give at least one training corpus")
        _require(len(set(self.eval)) == len(self.eval), f"{key}.eval", "lists a corpus twice")


@dataclasses.dataclass(frozen=True)
class OptimSection:
    """AdamW with linear warmup to the peak learning rate, then cosine decay to ``peak *
    min_lr_ratio`` at the last step; global-norm gradient clipping (``clip_norm = 0``: off);
    weight decay on the matrices only (not on norms and biases). Peak: ``lr``, or with
    ``lr_ref_width`` set, ``lr * lr_ref_width / hidden_size`` (one rule for a ladder of widths,
    Adam's learning rate inversely proportional to the width, as in muP). ``warmup_steps``:
    None means a tenth of the run's steps."""

    lr: float = 3e-3
    lr_ref_width: int | None = None
    warmup_steps: int | None = None  # None: a tenth of the steps
    min_lr_ratio: float = 0.1
    b1: float = 0.9
    b2: float = 0.95
    eps: float = 1e-8
    weight_decay: float = 0.1
    clip_norm: float = 1.0

    def warmup(self, steps: int) -> int:
        return steps // 10 if self.warmup_steps is None else self.warmup_steps

    def peak_lr(self, hidden_size: int) -> float:
        return self.lr if self.lr_ref_width is None else self.lr * self.lr_ref_width / hidden_size

    def check(self, key: str) -> None:
        _require(self.lr > 0, f"{key}.lr", f"must be positive, got {self.lr}")
        _require(self.lr_ref_width is None or self.lr_ref_width > 0, f"{key}.lr_ref_width",
                 f"must be positive or null, got {self.lr_ref_width}")
        _require(self.warmup_steps is None or self.warmup_steps >= 0, f"{key}.warmup_steps",
                 f"must be >= 0 or null, got {self.warmup_steps}")
        _require(0 <= self.min_lr_ratio <= 1, f"{key}.min_lr_ratio", f"must lie in [0, 1], got {self.min_lr_ratio}")
        _require(0 <= self.b1 < 1 and 0 <= self.b2 < 1, key, f"b1, b2 must lie in [0, 1), got {self.b1}, {self.b2}")
        _require(self.eps > 0, f"{key}.eps", f"must be positive, got {self.eps}")
        _require(self.weight_decay >= 0, f"{key}.weight_decay", f"must be >= 0, got {self.weight_decay}")
        _require(self.clip_norm >= 0, f"{key}.clip_norm", f"must be >= 0 (0: off), got {self.clip_norm}")


@dataclasses.dataclass(frozen=True)
class LossSection:
    """``L = CE + lam * Conf`` (``lam = 0``: cross-entropy). ``impl``: the token-statistics
    implementation (``auto``: the trainer's choice for the backend, see ``step.resolve_loss``);
    ``head``: materialise the logits or fuse the LM head (``auto``: the trainer's choice)."""

    lam: float = 0.0
    impl: str = "auto"
    head: str = "auto"

    def check(self, key: str) -> None:
        from rce_kernels.dispatch import IMPLS

        _require(0 <= self.lam < 1, f"{key}.lam", f"must lie in [0, 1), got {self.lam}")
        _require(self.impl in IMPLS, f"{key}.impl", f"expected one of {IMPLS}, got {self.impl!r}")
        _require(self.head in LOSS_HEADS, f"{key}.head", f"expected one of {LOSS_HEADS}, got {self.head!r}")


@dataclasses.dataclass(frozen=True)
class EvalSection:
    """Held-out decomposition every ``every`` steps (0: never; also at step 0 and at the end),
    through ``rce_jax.evaluate.score_plan``. ``max_tokens`` cuts each eval corpus at whole
    documents (None: all of it). ``max_tokens``, ``batch_size``, ``impl`` and ``fused`` are the
    ``rce_jax.evaluate.EvalConfig`` fields of those names, checked by it (``eval_config``)."""

    every: int = 0
    max_tokens: int | None = None
    batch_size: int = 8
    impl: str = "auto"
    fused: bool = True

    def eval_config(self, context_length: int):
        """The ``EvalConfig`` of these evaluations (no bootstrap: one number per eval)."""
        from ..evaluate.runner import EvalConfig

        return EvalConfig(context_length=context_length, batch_size=self.batch_size,
                          max_tokens=self.max_tokens, impl=self.impl, fused=self.fused, bootstrap=0)

    def check(self, key: str) -> None:
        _require(self.every >= 0, f"{key}.every", f"must be >= 0 (0: off), got {self.every}")
        try:
            self.eval_config(context_length=1)
        except ConfigError as e:
            raise e.under(key) from None


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """One training run. ``batch_size`` is global rows of ``context_length`` tokens per step."""

    model: ModelSection = dataclasses.field(default_factory=lambda: ModelSection(preset="demo-3"))
    tokenizer: TokenizerSection = dataclasses.field(default_factory=TokenizerSection)
    data: DataSection = dataclasses.field(default_factory=DataSection)
    optim: OptimSection = dataclasses.field(default_factory=OptimSection)
    loss: LossSection = dataclasses.field(default_factory=LossSection)
    eval: EvalSection = dataclasses.field(default_factory=EvalSection)
    steps: int = 200
    batch_size: int = 16
    context_length: int = 128
    seed: int = 0
    dtype: str = "float32"
    param_dtype: str = "float32"
    log_every: int = 1
    save_every: int = 50
    keep: int = 2
    model_parallel: int = 1
    fsdp: bool = False

    def __post_init__(self):
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if hasattr(value, "check"):
                value.check(f.name)
        for name in ("steps", "batch_size", "log_every", "save_every", "keep", "model_parallel"):
            _require(getattr(self, name) >= 1, name, f"must be >= 1, got {getattr(self, name)}")
        _require(self.context_length >= 2, "context_length", f"must be >= 2, got {self.context_length}")
        _require(self.seed >= 0, "seed", f"must be >= 0, got {self.seed}")
        for name in ("dtype", "param_dtype"):
            _require(getattr(self, name) in DTYPES, name, f"expected one of {DTYPES}, got {getattr(self, name)!r}")
        _require(self.optim.warmup_steps is None or self.optim.warmup_steps < self.steps, "optim.warmup_steps",
                 f"must be smaller than steps ({self.steps}), got {self.optim.warmup_steps}")

    # ---- conversion ------------------------------------------------------------------------
    @classmethod
    def from_dict(cls, d: dict) -> TrainConfig:
        return from_dict(cls, d)

    def to_dict(self) -> dict:
        return to_dict(self)

    def replace(self, **changes) -> TrainConfig:
        return dataclasses.replace(self, **changes)

    def with_overrides(self, overrides) -> TrainConfig:
        """A copy with ``key=value`` strings (dotted keys) applied."""
        d = self.to_dict()
        for item in overrides:
            apply_override(d, item)
        return TrainConfig.from_dict(d)


# Fields that may change between a run and its resumption: they do not change any number.
RESUMABLE_CHANGES = ("save_every", "keep", "tokenizer.cache_dir", "data.cache_dir")


def identity(config: TrainConfig) -> dict:
    """The settings that decide a run's numbers (everything but RESUMABLE_CHANGES)."""
    d = config.to_dict()
    for key in RESUMABLE_CHANGES:
        parts = key.split(".")
        node = d
        for p in parts[:-1]:
            node = node[p]
        node.pop(parts[-1], None)
    return d


def diff_keys(a: dict, b: dict, prefix: str = "") -> list[str]:
    """Dotted keys whose values differ between two nested dicts."""
    out = []
    for k in sorted(set(a) | set(b)):
        key = f"{prefix}{k}"
        va, vb = a.get(k), b.get(k)
        if isinstance(va, dict) and isinstance(vb, dict) and k != "overrides" and k != "hf_config":
            out += diff_keys(va, vb, key + ".")
        elif va != vb:
            out.append(key)
    return out


# ---- loading (the one loader, rce_jax.config) -------------------------------------------
def load_config(path=None, overrides=()) -> TrainConfig:
    """A config from a YAML or JSON file (or the defaults), with ``key=value`` overrides."""
    return load(TrainConfig, path, overrides)
