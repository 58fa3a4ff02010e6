"""The demo ladders of ``rce-jax demo``: the paper's whole pipeline on a laptop, offline.

``DEMO``: six Llama-style models (3.4e3 to 3.3e5 non-embedding parameters) trained on the
embedded Python documentation and standard-library code with one recipe, evaluated on the
held-out prose and code, fitted and reported: about four minutes on two CPU cores, more on a
busy machine (docs/measurements.md#wall-times has the measurements). ``QUICK``: five tiny models and a few
steps, trained on the documentation only, evaluation cut at a few thousand tokens: the same
report in under a minute, for CI.
"""

from __future__ import annotations

from .config import DataSection, EvalSection, OptimSection, TokenizerSection, TrainConfig
from .ladder import LadderSpec
from .presets import LADDERS

EVAL_SETS = ["python-docs@heldout", "python-code@heldout"]

DEMO = LadderSpec(
    name="demo",
    presets=LADDERS["demo"],
    recipe=TrainConfig(
        tokenizer=TokenizerSection(vocab_size=2048),
        data=DataSection(train=["python-docs@train", "python-code@train"], eval=EVAL_SETS),
        optim=OptimSection(lr=5e-3, lr_ref_width=64, warmup_steps=128, min_lr_ratio=0.1,
                           weight_decay=0.1, clip_norm=1.0),
        eval=EvalSection(),
        steps=1536, batch_size=8, context_length=64, seed=0, log_every=16, save_every=256, keep=1),
    eval_batch_size=32,
    eval_max_tokens=None,
    dynamics=128,
    dynamics_max_tokens=4096,
)

QUICK = LadderSpec(
    name="demo-quick",
    presets=LADDERS["quick"],
    recipe=TrainConfig(
        tokenizer=TokenizerSection(vocab_size=512),
        data=DataSection(train=["python-docs@train"], eval=EVAL_SETS),
        optim=OptimSection(lr=1e-2, warmup_steps=3, min_lr_ratio=0.1, weight_decay=0.1, clip_norm=1.0),
        eval=EvalSection(),
        steps=30, batch_size=8, context_length=64, seed=0, log_every=1, save_every=30, keep=1),
    eval_batch_size=16,
    eval_max_tokens=4096,
    dynamics=10,
    dynamics_max_tokens=2048,
)
