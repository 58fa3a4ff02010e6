"""A tiny Hugging Face model directory and corpus for the evaluation tests (not a test module)."""

from __future__ import annotations

import json
import math

import numpy as np
import transformers as tf
from data_helpers import harness_scored_tokens, make_tokenizer
from hf_tiny import make_hf_model, need_torch
from tolerances import FIXTURE_LOGIT_MAX_ABS, FIXTURE_NEAR_TIE_GAP

WORDS = ("alpha beta gamma delta tensor rank entropy model token scale law loss value "
         "def return import class self data print for while if else").split()


def write_corpus(path, n_docs: int, seed: int, max_words: int = 60) -> list[str]:
    """A JSONL corpus of random word sequences of varied length (some longer than 2 windows)."""
    rng = np.random.default_rng(seed)
    texts = []
    for i in range(n_docs):
        n = int(rng.integers(1, max_words))
        words = rng.choice(WORDS, n)
        texts.append(" ".join(words) + ("\n" if i % 3 == 0 else ""))
    path.write_text("".join(json.dumps({"text": t}) + "\n" for t in texts), encoding="utf-8")
    return texts


def make_model_dir(path, *, vocab_extra: int = 0, head_scale: float = 8.0, seed: int = 0,
                   max_positions: int = 128):
    """A random tiny Llama with its tokenizer, saved as a Hugging Face directory.

    Our float32 logits differ from transformers' by about 1.7e-6 of their spread (measured:
    8e-6 at a logit std of 4.6), so a competitor within ~1e-5 of a target may legitimately
    swap ranks. ``reference_decomposition`` asserts that no scored token comes that close;
    the tests use a fixed seed for which this holds, so they are deterministic.
    """
    tokenizer = make_tokenizer(vocab_size=320, texts=[" ".join(WORDS)] * 4)
    config = tf.LlamaConfig(vocab_size=len(tokenizer) + vocab_extra, hidden_size=32,
                            num_hidden_layers=2, num_attention_heads=4, intermediate_size=64,
                            max_position_embeddings=max_positions, tie_word_embeddings=False,
                            bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id)
    model = make_hf_model(config, seed=seed)
    torch = need_torch()
    with torch.no_grad():
        model.lm_head.weight.mul_(head_scale)
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return model, tokenizer


def reference_decomposition(model, tokenizer, texts, context_length: int, *,
                            min_gap: float = FIXTURE_NEAR_TIE_GAP):
    """CE, EE, SA, Conf by the harness's windows, transformers' float32 logits and float64 NumPy.

    Returns (decomposition dict, number of scored tokens, summed log-likelihood). Asserts that
    no competitor logit lies within ``min_gap`` of a target logit (see make_model_dir).
    """
    from np_reference import np_decompose

    torch = need_torch()
    prefix = tokenizer.bos_token_id
    logps, ranks = [], []
    for text in texts:
        tokens = tokenizer(text, add_special_tokens=False)["input_ids"]
        scored = harness_scored_tokens(tokens, prefix, context_length)
        assert [i for i, _, _ in scored] == list(range(len(tokens)))  # each token exactly once
        for _, model_input, target in scored:
            with torch.no_grad():
                z = model(torch.tensor([model_input])).logits[0, -1].double().numpy()
            # the float32 bounds of tests/tolerances.py (LOGP_F32_ABS, ...) assume |z| < 32
            assert np.abs(z).max() < FIXTURE_LOGIT_MAX_ABS, f"logit {np.abs(z).max():.1f}: the fixture is too peaked"
            gap = np.abs(np.delete(z, target) - z[target]).min()
            assert gap > min_gap, f"near-tie {gap:.2e}: the fixture is not well separated"
            m = z.max()
            logps.append(z[target] - (m + math.log(np.exp(z - m).sum())))
            ranks.append(int((z > z[target]).sum()))
    return np_decompose(logps, ranks), len(logps), float(np.sum(logps))
