"""A real result record from random statistics, for tests of its consumers (not a test module)."""

import numpy as np

from rce_jax.data import TextMetrics
from rce_jax.results import EvalResult, build_result
from rce_jax.stats import TIE_RULE, RankStats

SETTINGS = {"context_length": 64, "tokenization": "plain", "rank_vocab": "model", "dtype": "float32",
            "ranked_logits_dtype": "float32", "max_tokens": None, "tie_rule": TIE_RULE, "vocab_limit": 50}


def make_record(rng, *, n_params=1000, model="m", dataset="d", fingerprint="f" * 64, settings=None,
            family="llama", tokenizer="t" * 64) -> EvalResult:
    """A record through ``build_result`` (the producers' path) of random rank statistics."""
    V = 50
    count = rng.integers(0, 30, V)
    count[0] += 1
    stats = RankStats(V, count.astype(np.int64), -rng.random(V) * count, int(rng.integers(0, 5)),
                      {"tie_rule": TIE_RULE})
    n = int(count.sum())
    text = TextMetrics(float(stats.sum_logp.sum()), n, n // 2 + 1, 3 * n)
    return build_result(stats, text, model=model, model_path=f"/runs/{model}", family=family,
                        architecture="llama", counts={"total": 2 * n_params, "non_embedding": n_params},
                        dataset=dataset, dataset_spec=f"/data/{dataset}.jsonl", corpus_fingerprint=fingerprint,
                        tokenizer_fingerprint=tokenizer, n_documents=3, settings={**SETTINGS, **(settings or {})})
