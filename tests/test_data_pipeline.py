"""End to end, as the eval runner uses it: corpus -> token cache -> packed batches -> scored tokens
-> per-corpus log-likelihood and word/byte metrics, against the harness's rolling windows."""

import json
import math
import re

import numpy as np
import pytest
from data_helpers import harness_scored_tokens, make_tokenizer

from rce_jax.data import load_corpus, plan_batches, tokenize_corpus
from tolerances import F64_SUM_REL


def fake_logprob(context, target):
    """A deterministic stand-in for log p(target | context) that depends on the whole context."""
    h = 17
    for i, t in enumerate(context):
        h = (h * 1_000_003 + (i + 1) * (t + 7)) % 2_147_483_647
    h = (h * 31 + target) % 1009
    return -(1.0 + h) / 337.0


def score_batch(batch):
    """What a model + the token-stats kernel compute: sum of log p over the scored positions,
    each position seeing only the earlier inputs of its own segment."""
    total = 0.0
    for b, t in zip(*np.nonzero(batch.score_mask)):
        seg = batch.segment_ids[b]
        ctx = batch.input_ids[b, : t + 1][seg[: t + 1] == seg[t]]
        total += fake_logprob(ctx.tolist(), int(batch.target_ids[b, t]))
    return total


@pytest.mark.parametrize("packing", ["none", "first_fit"])
@pytest.mark.parametrize("seq_len", [5, 16])
def test_runner_flow_matches_harness_rolling_loglikelihood(tmp_path, packing, seq_len):
    """Summing the scored positions of all batches (resumed midway) gives the harness's
    corpus log-likelihood, and the plan's word/byte metrics are the harness's aggregation."""
    texts = ["the quick brown fox", "", "  jumps over\nthe lazy dog  ", "café ☕ " * 9, "x", "def f(x): return x"]
    path = tmp_path / "docs.jsonl"
    path.write_text("".join(json.dumps({"text": t}) + "\n" for t in texts))
    tokenizer = make_tokenizer()
    corpus = load_corpus(str(path))
    tokenized = tokenize_corpus(corpus, tokenizer, cache_dir=tmp_path / "cache")
    plan = plan_batches(tokenized, seq_len=seq_len, batch_size=2, packing=packing)

    assert plan.num_batches >= 2
    resume_at = plan.num_batches // 2
    total = 0.0
    for batch in plan.iter_batches():  # a run interrupted before batch resume_at ...
        if batch.index == resume_at:
            break
        total += score_batch(batch)
    for batch in plan.iter_batches(start_batch=resume_at):  # ... and resumed from it
        total += score_batch(batch)

    want = 0.0
    for text in texts:
        ids = tokenizer.encode(text, add_special_tokens=False)
        for _, ctx, target in harness_scored_tokens(ids, tokenizer.bos_token_id, seq_len):
            want += fake_logprob(ctx, target)
    assert total == pytest.approx(want, rel=F64_SUM_REL)

    words = sum(len(re.split(r"\s+", t)) for t in texts)
    nbytes = sum(len(t.encode("utf-8")) for t in texts)
    m = plan.text_metrics(total)
    assert (m.num_words, m.num_bytes, m.num_tokens) == (words, nbytes, len(tokenized.tokens))
    assert m.word_perplexity == pytest.approx(math.exp(-want / words), rel=F64_SUM_REL)
    assert m.byte_perplexity == pytest.approx(math.exp(-want / nbytes), rel=F64_SUM_REL)
    assert m.bits_per_byte == pytest.approx(-want / nbytes / math.log(2), rel=F64_SUM_REL)


def test_max_tokens_metrics_cover_only_the_kept_documents(tmp_path):
    """With max_tokens, words and bytes are summed over exactly the documents that are scored."""
    texts = ["alpha beta", "gamma delta epsilon", "zeta"]
    (tmp_path / "d").mkdir()
    for i, t in enumerate(texts):
        (tmp_path / "d" / f"{i}.txt").write_text(t)
    tokenized = tokenize_corpus(load_corpus(str(tmp_path / "d")), make_tokenizer(), use_cache=False)
    first = len(tokenized.doc_tokens(0))
    plan = plan_batches(tokenized, seq_len=8, batch_size=2, max_tokens=first + 1)
    assert plan.windows.num_docs == 2
    assert plan.num_scored_tokens == first + len(tokenized.doc_tokens(1))
    assert (plan.num_words, plan.num_bytes) == (2 + 3, len("alpha beta") + len("gamma delta epsilon"))
