"""Shared pieces of the tests/test_train_*.py files (not a test module itself)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
ADJ = "red green blue small large quick lazy old new bright".split()
NOUN = "cat dog tree river model token tensor graph kernel stone".split()
VERB = "sees likes moves finds keeps holds builds reads".split()
# The wall-clock fields of a training metrics row (rce_jax/train/loop.py): the only ones an
# interrupted and resumed run may differ in.
TIMING_KEYS = ("tokens_per_s", "elapsed_s")


def without_timing(row: dict) -> dict:
    """A metrics row without its wall-clock fields (what must match across a resume)."""
    return {k: v for k, v in row.items() if k not in TIMING_KEYS}


def write_corpus(path, n_docs: int, seed: int) -> list[str]:
    """A JSONL corpus of sentences from a tiny grammar (learnable within a few dozen steps)."""
    rng = np.random.default_rng(seed)
    texts = []
    for _ in range(n_docs):
        sentences = [f"the {rng.choice(ADJ)} {rng.choice(NOUN)} {rng.choice(VERB)} the {rng.choice(NOUN)}."
                     for _ in range(int(rng.integers(2, 12)))]
        texts.append(" ".join(sentences))
    path.write_text("".join(json.dumps({"text": t}) + "\n" for t in texts), encoding="utf-8")
    return texts


def tiny_config_dict(folder, **changes) -> dict:
    """A small run on corpora written into ``folder`` (written if missing)."""
    train, heldout = folder / "train.jsonl", folder / "heldout.jsonl"
    if not train.exists():
        write_corpus(train, 120, seed=1)
        write_corpus(heldout, 12, seed=2)
    d = {"model": {"preset": "quick-2"},
         "tokenizer": {"vocab_size": 300, "cache_dir": str(folder / "tokenizers")},
         "data": {"train": [str(train)], "eval": [str(heldout)], "cache_dir": str(folder / "tokens")},
         "optim": {"lr": 1e-2, "warmup_steps": 2},
         "eval": {"every": 8, "batch_size": 8},
         "steps": 24, "batch_size": 8, "context_length": 32, "save_every": 5, "keep": 2}
    for key, value in changes.items():
        node = d
        *parents, last = key.split(".")
        for p in parents:
            node = node.setdefault(p, {})
        node[last] = value
    return d


def run_python(args, *, env_extra=None, timeout=300):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([ROOT, os.path.join(ROOT, "kernels")]),
               **(env_extra or {}))
    return subprocess.run([sys.executable, *args], env=env, capture_output=True, text=True,
                          timeout=timeout)
