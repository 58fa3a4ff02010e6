"""The data layer: corpora, the token cache, rolling windows, batches (one type for evaluation
and training) and their packing, text metrics.

Typical use (see each module for the exact conventions)::

    corpus = load_corpus("python-docs@heldout")
    tokenized = tokenize_corpus(corpus, tokenizer)          # cached on disk
    plan = plan_batches(tokenized, seq_len=2048, batch_size=32)
    for batch in plan.iter_batches(start_batch=0):
        ...  # score batch.model_inputs(); sum log p over batch.score_mask
    metrics = plan.text_metrics(sum_logprob)                 # word/byte perplexity, bits/byte
"""

from rce_jax.data.corpora import Corpus, as_corpus, load_corpus, parse_spec
from rce_jax.data.embedded import CODE_MODULES, EMBEDDED_CORPORA, is_heldout
from rce_jax.data.metrics import TextMetrics, count_bytes, count_words
from rce_jax.data.batch import MODEL_INPUTS, Batch, restarting_positions
from rce_jax.data.packing import PACKING_MODES, BatchPlan, pack_windows, plan_batches
from rce_jax.data.tokenize import (
    TokenizedCorpus,
    cache_path,
    default_cache_dir,
    prefix_token_id,
    tokenize_corpus,
    tokenizer_fingerprint,
)
from rce_jax.data.windows import Windows, make_windows, rolling_windows, window_tokens

__all__ = [
    "Batch",
    "BatchPlan",
    "CODE_MODULES",
    "Corpus",
    "EMBEDDED_CORPORA",
    "MODEL_INPUTS",
    "PACKING_MODES",
    "TextMetrics",
    "TokenizedCorpus",
    "Windows",
    "cache_path",
    "count_bytes",
    "count_words",
    "default_cache_dir",
    "is_heldout",
    "as_corpus",
    "load_corpus",
    "make_windows",
    "pack_windows",
    "parse_spec",
    "plan_batches",
    "prefix_token_id",
    "restarting_positions",
    "rolling_windows",
    "tokenize_corpus",
    "tokenizer_fingerprint",
    "window_tokens",
]
