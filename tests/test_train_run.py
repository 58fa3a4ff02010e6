"""A short training run: data order, the loss going down, periodic evaluation equal to
`rce-jax eval`, and the Hugging Face export that transformers loads."""

import json

import jax.numpy as jnp
import numpy as np
import pytest
import transformers
from train_helpers import tiny_config_dict

from rce_jax.data import MODEL_INPUTS, load_corpus, tokenize_corpus
from rce_jax.evaluate import EvalConfig, evaluate
from rce_jax.models import compute_logits
from rce_jax.train import TrainConfig, train
from rce_jax.train.data import TrainStream
from rce_jax.train.tokenizer import get_tokenizer
from tolerances import (F64_IDENTITY_ABS, HF_PARITY_LOGITS_ABS, JSON_ROUND_TRIP_REL,
                        LOGGED_LOSS_F32_REL, LR_F32_REL)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("train_run")
    config = TrainConfig.from_dict(tiny_config_dict(folder, steps=40, save_every=20,
                                                    **{"eval.every": 20}))
    return folder, config, train(config, folder / "run", progress=False, verbose=False)


def test_stream_batches_are_a_pure_function_of_seed_and_step(run):
    """Batch k depends only on (seed, k): two streams built independently agree, a different seed
    differs. Rows are stream slices whose targets are the next tokens; a target is scored iff it is
    in the input's document; segment ids change exactly at document starts; over one epoch no
    chunk is visited twice (checked against the stream with NumPy loops)."""
    folder, config, _ = run
    tok = get_tokenizer(config.tokenizer, config.data.train, verbose=False)
    make = lambda seed: TrainStream.from_corpora(config.data.train, tok, seq_len=32, seed=seed,  # noqa: E731
                                                 cache_dir=config.data.cache_dir)
    a, b, c = make(0), make(0), make(1)
    for k in (0, 5, 1000):
        ba, bb = a.batch(k, 8), b.batch(k, 8)
        assert all(np.array_equal(getattr(ba, key), getattr(bb, key))
                   for key in (*MODEL_INPUTS, "doc_ids", "target_index"))
    assert not np.array_equal(a.batch(3, 8).input_ids, c.batch(3, 8).input_ids)
    # the stream: <s> text </s> per non-empty document, in corpus order (a plain loop here)
    corpus = tokenize_corpus(load_corpus(config.data.train[0]), tok, cache_dir=config.data.cache_dir)
    tokens, docs, kept = [], [], 0
    for d in range(corpus.num_docs):
        body = corpus.tokens[corpus.offsets[d]:corpus.offsets[d + 1]].tolist()
        if body:
            docs += [kept] * (len(body) + 2)
            tokens += [tok.bos_token_id, *body, tok.eos_token_id]
            kept += 1
    assert a.tokens.tolist() == tokens and a.doc_ids.tolist() == docs
    batch, starts = a.batch(7, 8), a.row_starts(7, 8)
    for r, s in enumerate(starts):
        assert batch.input_ids[r].tolist() == a.tokens[s:s + 32].tolist()
        assert batch.target_ids[r].tolist() == a.tokens[s + 1:s + 33].tolist()
        for t in range(32):
            assert batch.score_mask[r, t] == (a.doc_ids[s + t] == a.doc_ids[s + t + 1])
            if t:
                assert (batch.segment_ids[r, t] != batch.segment_ids[r, t - 1]) == (
                    a.doc_ids[s + t] != a.doc_ids[s + t - 1])
    n = a.num_chunks
    epoch = np.concatenate([a.row_starts(k, 1) for k in range(n)])
    assert len(set(epoch.tolist())) == n and (epoch + 33 <= len(a.tokens)).all()


def test_training_lowers_the_loss(run):
    """40 steps lower the training loss and the held-out CE; logged rows hold the documented
    fields; the learning rate follows warmup + cosine; the held-out decomposition adds up."""
    _, config, result = run
    rows = [r for r in result.rows if "loss" in r]
    assert [r["step"] for r in rows] == list(range(1, 41))
    first, last = rows[0]["loss"], np.mean([r["loss"] for r in rows[-5:]])
    assert last < first - 1.0, (first, last)
    for key in ("ce", "conf", "lr", "grad_norm", "tokens_per_s", "scored_tokens", "tokens"):
        assert key in rows[0]
    assert rows[0]["loss"] == rows[0]["ce"]  # lam = 0
    lr = config.optim.lr
    assert rows[0]["lr"] == 0.0 and rows[1]["lr"] == pytest.approx(lr / 2, rel=LR_F32_REL)  # warmup, 2 steps
    assert rows[2]["lr"] == pytest.approx(lr, rel=LR_F32_REL) and rows[-1]["lr"] < 0.2 * lr
    evals = [r for r in result.rows if "eval" in r]
    assert [r["step"] for r in evals] == [0, 20, 40]
    (name,) = evals[0]["eval"]
    ce = [r["eval"][name]["ce"] for r in evals]
    assert ce[-1] < ce[0] - 1.0
    for r in evals:
        e = r["eval"][name]
        assert e["ce"] == pytest.approx(e["ee"] + e["sa"] - e["conf"], abs=F64_IDENTITY_ABS)
        assert sum(e["rank_stats"]["count"]) == e["n_tokens"]
    figures = sorted(p.name.split("_")[0] for p in (result.out_dir / "figures").glob("*.png"))
    assert figures == ["p", "training"]  # p_evolution_<set>.png, training_dynamics_<set>.png


def test_periodic_eval_equals_rce_jax_eval(run, tmp_path):
    """The last periodic evaluation equals `rce-jax eval` (evaluate()) of the exported model on the
    same corpus and settings, to float64 rounding: both go through score_plan."""
    _, config, result = run
    last = [r for r in result.rows if "eval" in r][-1]
    (name, e), = last["eval"].items()
    rec = evaluate(result.model_dir, config.data.eval[0], tmp_path,
                   EvalConfig(context_length=config.context_length, batch_size=config.eval.batch_size,
                              max_tokens=config.eval.max_tokens), progress=False)
    assert rec["n_tokens"] == e["n_tokens"]
    for key in ("ce", "ee", "sa", "conf"):
        assert rec[key] == pytest.approx(e[key], rel=JSON_ROUND_TRIP_REL, abs=JSON_ROUND_TRIP_REL), key
    assert rec["rank_stats"]["count"] == e["rank_stats"]["count"]
    # the same record: the trainer's reads as an EvalResult and is keyed and grouped the same
    from rce_jax.results import EvalResult
    from rce_jax.report import group_key

    typed = EvalResult.from_dict(e)
    assert (typed.producer, typed.step, rec.producer) == ("train", last["step"], "eval")
    assert group_key(typed) == group_key(rec)
    assert typed.tokenizer_fingerprint == rec.tokenizer_fingerprint
    assert typed.word_perplexity == pytest.approx(rec.word_perplexity, rel=JSON_ROUND_TRIP_REL)


def test_export_loads_in_transformers_with_equal_logits(run):
    """The exported folder loads with transformers' AutoModelForCausalLM and AutoTokenizer; its logits
    equal those of the trained model in memory to 1e-4 on random token ids; parameter counts and
    tokenizer encodings agree."""
    torch = pytest.importorskip("torch", reason="needs torch, the tests' independent reference")
    folder, config, result = run
    hf = transformers.AutoModelForCausalLM.from_pretrained(result.model_dir, dtype=torch.float32).eval()
    tok = transformers.AutoTokenizer.from_pretrained(result.model_dir)
    ours = get_tokenizer(config.tokenizer, config.data.train, verbose=False)
    text = "the quick model sees the old tensor."
    assert tok(text)["input_ids"] == ours(text)["input_ids"]
    assert tok.bos_token_id == ours.bos_token_id and tok.eos_token_id == ours.eos_token_id
    ids = np.random.default_rng(5).integers(0, len(ours), (2, 32)).astype(np.int32)
    with torch.no_grad():
        theirs = hf(torch.from_numpy(ids.astype(np.int64))).logits.numpy()
    mine = np.asarray(compute_logits(result.model, jnp.asarray(ids)))
    assert np.max(np.abs(mine - theirs)) < HF_PARITY_LOGITS_ABS
    assert hf.num_parameters() == result.summary["n_params"]
    summary = json.loads((result.out_dir / "summary.json").read_text())
    assert summary["tokens_trained"] == 40 * 8 * 32 and summary["loss_impl"] == "naive"


def test_stream_without_bos_and_with_empty_documents(tmp_path):
    """A tokenizer without BOS separates documents by one EOS in front of each; empty documents
    vanish; too little data for one row is a clear error."""
    from data_helpers import make_tokenizer

    tok = make_tokenizer(bos=False)
    path = tmp_path / "c.jsonl"
    texts = ["def f(x): return x", "", "the quick brown fox"]
    path.write_text("".join(json.dumps({"text": t}) + "\n" for t in texts))
    s = TrainStream.from_corpora([str(path)], tok, seq_len=4, seed=0, cache_dir=tmp_path)
    e = tok.eos_token_id
    bodies = [tok(t, add_special_tokens=False)["input_ids"] for t in texts if t]
    assert s.tokens.tolist() == [e, *bodies[0], e, *bodies[1]]
    assert s.doc_ids.tolist() == [0] * (len(bodies[0]) + 1) + [1] * (len(bodies[1]) + 1)
    with pytest.raises(ValueError, match="too few for even one row"):
        TrainStream.from_corpora([str(path)], tok, seq_len=64, seed=0, cache_dir=tmp_path)


def test_proxy_loss_hf_config_and_bf16_compute(tmp_path):
    """A GPT-NeoX architecture given as a config.json dict, trained with lam = 0.3 in bfloat16 compute
    (float32 parameters): every logged loss is CE + 0.3 Conf, the loss falls, the export is a
    float32 GPT-NeoX checkpoint."""
    neox = {"model_type": "gpt_neox", "hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 4,
            "intermediate_size": 64, "rotary_pct": 0.5, "vocab_size": 300, "max_position_embeddings": 32,
            "use_parallel_residual": True, "tie_word_embeddings": False}
    d = tiny_config_dict(tmp_path, steps=30, **{"eval.every": 0, "loss.lam": 0.3, "dtype": "bfloat16"})
    d["model"] = {"hf_config": neox}
    result = train(TrainConfig.from_dict(d), tmp_path / "run", progress=False, verbose=False)
    rows = [r for r in result.rows if "loss" in r]
    for r in rows:
        assert r["loss"] == pytest.approx(r["ce"] + 0.3 * r["conf"], rel=LOGGED_LOSS_F32_REL, abs=LOGGED_LOSS_F32_REL)
    assert np.mean([r["loss"] for r in rows[-5:]]) < rows[0]["loss"] - 0.5
    hf = json.loads((result.model_dir / "config.json").read_text())
    assert hf["model_type"] == "gpt_neox" and hf["torch_dtype"] == "float32"
    assert result.model.dtype == jnp.bfloat16
