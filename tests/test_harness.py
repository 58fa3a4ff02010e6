"""Both lm-evaluation-harness conventions, and Hugging Face corpora, against lm_eval itself.

Needs the optional ``harness`` extra (``lm_eval[hf]``, ``datasets``) and torch; skipped without
them, except under RCE_JAX_REQUIRE_HARNESS=1 (CI), where a missing package is an error. Each test
saves tiny models with ``save_pretrained`` and tokenizers made here (one that adds ``<s>`` to
every encoding, as Llama's does; one that has ``<s>`` but adds nothing; one with only an EOS, as
GPT-2's), runs lm_eval's own ``HFLM`` / ``simple_evaluate`` offline on them and compares.

Tolerance: both sides compute float32 logits (torch and XLA, different summation orders), so a
log-probability differs by a few float32 ulps of the logit scale. Measured here (docs/harness.md):
relative difference of the summed log-likelihood <= 1.5e-8, of word perplexity <= 1.4e-7 (it
is exp(-sum/words), so it moves by |d sum| / words). ``HARNESS_F32_REL`` = 2e-6 (about 17 float32
epsilons; tests/tolerances.py) bounds these with room for other seeds while a single token
scored differently (|log p| ~ 5 on ~300 tokens: ~1e-2 relative) fails by far.
Token counts must be identical.
"""

import importlib
import json
import os
import re

import numpy as np
import pytest
from tolerances import HARNESS_F32_REL

pytestmark = pytest.mark.harness

L = 16  # context length: documents below take one to four windows


def _require(name):
    if os.environ.get("RCE_JAX_REQUIRE_HARNESS") == "1":
        return importlib.import_module(name)
    return pytest.importorskip(name)


@pytest.fixture(scope="module")
def lm_eval(tmp_path_factory):
    os.environ.setdefault("HF_DATASETS_CACHE", str(tmp_path_factory.mktemp("hf_datasets_cache")))
    _require("torch")
    _require("datasets")
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    return _require("lm_eval")


def _texts(rng, n_docs):
    from eval_fixtures import WORDS

    out = []
    for i in range(n_docs):
        words = rng.choice(WORDS, int(rng.integers(1, 45)))
        out.append(" ".join(words) + ("\n" if i % 2 else ""))
    return out


TOKENIZERS = {
    # name: make_tokenizer options, and how many tokens the tokenizer adds to each document
    "adds_bos": ({"bos_post_processor": True}, 1),
    "has_bos_adds_none": ({}, 0),
    "eos_only": ({"bos": False}, 0),
}


@pytest.fixture(scope="module")
def models(tmp_path_factory, lm_eval):
    """One tiny Llama per tokenizer, saved with save_pretrained (fixed seed: see eval_fixtures
    on near-ties; the rank statistics are not compared here, only log-likelihoods)."""
    import transformers as tf
    from data_helpers import make_tokenizer
    from eval_fixtures import WORDS
    from hf_tiny import make_hf_model

    root = tmp_path_factory.mktemp("harness")
    out = {}
    for name, (options, _) in TOKENIZERS.items():
        tok = make_tokenizer(vocab_size=320, texts=[" ".join(WORDS)] * 4, **options)
        config = tf.LlamaConfig(vocab_size=len(tok), hidden_size=32, num_hidden_layers=2,
                                num_attention_heads=4, intermediate_size=64, max_position_embeddings=128,
                                bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id)
        model = make_hf_model(config, seed=3)
        model.save_pretrained(root / name)
        tok.save_pretrained(root / name)
        out[name] = root / name
    return root, out


def _harness_rolling(lm_eval, model_dir, texts, add_bos_token):
    """Per-document log-likelihoods and token counts by lm_eval's HFLM.loglikelihood_rolling."""
    from lm_eval.api.instance import Instance
    from lm_eval.models.huggingface import HFLM

    lm = HFLM(pretrained=str(model_dir), dtype="float32", device="cpu", batch_size=1, max_length=L,
              add_bos_token=add_bos_token)
    reqs = [Instance(request_type="loglikelihood_rolling", doc={}, arguments=(t,), idx=i)
            for i, t in enumerate(texts)]
    lls = lm.loglikelihood_rolling(reqs, disable_tqdm=True)
    return np.array(lls, np.float64), sum(len(lm.tok_encode(t)) for t in texts)


@pytest.mark.parametrize("tokenizer", sorted(TOKENIZERS))
def test_both_conventions_equal_lm_eval(models, lm_eval, tokenizer, tmp_path):
    """The default convention equals lm_eval run with add_bos_token=False, and
    --add-special-tokens equals lm_eval 0.4.13 as it runs by default (the tokenizer's own special
    tokens), in summed log-likelihood (to float32 noise) and scored token count (exactly), for
    tokenizers that add BOS and ones that do not; where the tokenizer adds a token, the two
    conventions differ by exactly one scored token per document."""
    from rce_jax.evaluate import EvalConfig, evaluate

    rng = np.random.default_rng(seed := int(np.random.SeedSequence().entropy % 2**32))
    print(f"seed={seed}")
    root, dirs = models
    texts = _texts(rng, 7)
    corpus = tmp_path / "docs.jsonl"
    corpus.write_text("".join(json.dumps({"text": t}) + "\n" for t in texts), encoding="utf-8")
    ours = {}
    for special in (False, True):
        r = evaluate(dirs[tokenizer], str(corpus), tmp_path / "out", EvalConfig(
            context_length=L, batch_size=4, add_special_tokens=special),
            cache_dir=tmp_path / "cache", progress=False)
        assert r["settings"]["tokenization"] == ("special_tokens" if special else "plain")
        ours[special] = r
    for special, add_bos_token in ((False, False), (True, None)):
        lls, n_tokens = _harness_rolling(lm_eval, dirs[tokenizer], texts, add_bos_token)
        r = ours[special]
        print(f"{tokenizer} special={special}: {n_tokens} tokens, sum log-likelihood relative "
              f"difference {abs(r['sum_logprob'] / lls.sum() - 1):.2e}")
        assert r["n_tokens"] == n_tokens
        assert r["sum_logprob"] == pytest.approx(lls.sum(), rel=HARNESS_F32_REL)
        n_words = sum(len(re.split(r"\s+", t)) for t in texts)
        assert r["word_perplexity"] == pytest.approx(np.exp(-lls.sum() / n_words), rel=HARNESS_F32_REL)
    added = TOKENIZERS[tokenizer][1]
    assert ours[True]["n_tokens"] - ours[False]["n_tokens"] == added * len(texts)


def test_wikitext_corpus_equals_the_harness_task(models, lm_eval, tmp_path):
    """``wikitext:FOLDER@test`` (a save_to_disk copy of the harness's document-level WikiText)
    gives lm_eval's wikitext task numbers: word perplexity, byte perplexity and bits per byte of
    simple_evaluate with the task's own detokenizer and word/byte counting on the original page,
    to float32 noise, in both conventions."""
    import datasets

    from rce_jax.evaluate import EvalConfig, evaluate

    pw = importlib.import_module("lm_eval.tasks.wikitext.preprocess_wikitext")
    rng = np.random.default_rng(seed := int(np.random.SeedSequence().entropy % 2**32))
    print(f"seed={seed}")
    pages = [_wikitext_page(rng) for _ in range(5)]
    folder = tmp_path / "wikitext_document_level"
    datasets.DatasetDict({"test": datasets.Dataset.from_dict({"page": pages})}).save_to_disk(str(folder))
    jsonl = tmp_path / "pages.jsonl"
    jsonl.write_text("".join(json.dumps({"page": p}) + "\n" for p in pages), encoding="utf-8")
    task = {"task": "wikitext_local", "dataset_path": "json",
            "dataset_kwargs": {"data_files": {"test": str(jsonl)}},
            "output_type": "loglikelihood_rolling", "test_split": "test", "doc_to_text": "",
            "doc_to_target": pw.wikitext_detokenizer, "process_results": pw.process_results,
            "metric_list": [{"metric": m} for m in ("word_perplexity", "byte_perplexity", "bits_per_byte")]}
    _, dirs = models
    from lm_eval.models.huggingface import HFLM

    for special, add_bos_token in ((False, False), (True, None)):
        lm = HFLM(pretrained=str(dirs["adds_bos"]), dtype="float32", device="cpu", batch_size=1,
                  max_length=L, add_bos_token=add_bos_token)
        want = lm_eval.simple_evaluate(model=lm, tasks=[task])["results"]["wikitext_local"]
        r = evaluate(dirs["adds_bos"], f"wikitext:{folder}@test", tmp_path / "out",
                     EvalConfig(context_length=L, batch_size=4, add_special_tokens=special),
                     cache_dir=tmp_path / "cache", progress=False)
        assert r["settings"]["detokenizer"] is None and r["dataset_spec"] == f"wikitext:{folder}@test"
        for metric in ("word_perplexity", "byte_perplexity", "bits_per_byte"):
            print(f"wikitext special={special} {metric}: ours {r[metric]:.9g}, lm_eval "
                  f"{want[metric + ',none']:.9g}, relative {abs(r[metric] / want[metric + ',none'] - 1):.2e}")
            assert r[metric] == pytest.approx(want[f"{metric},none"], rel=HARNESS_F32_REL), metric


def _wikitext_page(rng) -> str:
    """A WikiText-like page: headings, @-@ separators, spaced punctuation, brackets, quotes."""
    from eval_fixtures import WORDS

    pieces = [" = " + str(rng.choice(WORDS)).title() + " = \n"]
    extras = [" @-@ ", " @,@ ", " @.@ ", " , ", " . ", " ; ", " : ", " ( ", " ) ", ' " ', " 's ",
              " = = ", " N ", " \u00b0 ", "s ' ", " [ ", " ] ", "/' 3/"]
    for _ in range(int(rng.integers(2, 5))):
        words = []
        for _ in range(int(rng.integers(3, 25))):
            words.append(str(rng.choice(WORDS)))
            if rng.random() < 0.35:
                words.append(str(rng.choice(extras)).strip(" ") if rng.random() < 0.2 else str(rng.choice(extras)))
        pieces.append(" " + " ".join(words) + " \n")
    return "".join(pieces)


def test_wikitext_detokenizer_equals_the_harness_function(lm_eval):
    """rce_jax.data.detokenize.wikitext equals the harness's wikitext_detokenizer on random
    WikiText-like pages (every replacement rule occurs)."""
    from rce_jax.data.detokenize import wikitext

    pw = importlib.import_module("lm_eval.tasks.wikitext.preprocess_wikitext")
    rng = np.random.default_rng(seed := int(np.random.SeedSequence().entropy % 2**32))
    print(f"seed={seed}")
    for _ in range(300):
        page = _wikitext_page(rng)
        assert wikitext(page) == pw.wikitext_detokenizer({"page": page}), page


def test_harness_agreement_experiment_runs_on_a_small_raw_file(models, lm_eval, tmp_path):
    """experiments/harness_agreement.py splits a WikiText raw file at its top-level titles (not at
    `` = = `` subheadings) and reports, per tokenizer, equal token counts and float32-noise
    differences for the two matching comparisons, and for a tokenizer that adds ``<s>`` one token
    per article more under lm_eval's default than under rce-jax's default."""
    from rce_jax.bench import harness_agreement as ha
    rng = np.random.default_rng(seed := int(np.random.SeedSequence().entropy % 2**32))
    print(f"seed={seed}")
    pages = [_wikitext_page(rng) for _ in range(3)]
    raw = tmp_path / "wiki.test.raw"
    raw.write_text("".join(pages).replace("\n", "\r\n"), encoding="utf-8")
    assert ha.split_articles(raw.read_text(encoding="utf-8"), 10) == pages
    _, dirs = models
    assert ha.main(["--raw", str(raw), "--tokenizer", str(dirs["adds_bos"]), "--articles", "3",
                    "--context-length", str(L), "--out", str(tmp_path / "out")]) == 0
    rows = json.loads((tmp_path / "out" / "agreement.json").read_text())["rows"]
    assert [r["comparison"] for r in rows] == ["default vs add_bos_token=False",
                                               "--add-special-tokens vs lm_eval default",
                                               "default vs lm_eval default"]
    for r in rows[:2]:
        assert r["tokens_ours"] == r["tokens_lm_eval"]
        assert max(r[f"rel_{m}"] for m in ("word_perplexity", "byte_perplexity", "bits_per_byte")) < HARNESS_F32_REL
    assert rows[2]["tokens_lm_eval"] - rows[2]["tokens_ours"] == 3
