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
from tolerances import F64_IDENTITY_ABS, HF_PARITY_LOGITS_ABS, JSON_ROUND_TRIP_REL, LR_F32_REL


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
    (float32 parameters): every logged loss, CE and Conf is finite, the loss falls, the export is a
    float32 GPT-NeoX checkpoint (the logged loss itself: test_logged_proxy_loss_is_numpys_on_the_first_batch)."""
    neox = {"model_type": "gpt_neox", "hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 4,
            "intermediate_size": 64, "rotary_pct": 0.5, "vocab_size": 300, "max_position_embeddings": 32,
            "use_parallel_residual": True, "tie_word_embeddings": False}
    d = tiny_config_dict(tmp_path, steps=30, **{"eval.every": 0, "loss.lam": 0.3, "dtype": "bfloat16"})
    d["model"] = {"hf_config": neox}
    result = train(TrainConfig.from_dict(d), tmp_path / "run", progress=False, verbose=False)
    rows = [r for r in result.rows if "loss" in r]
    assert all(np.isfinite([r["loss"], r["ce"], r["conf"]]).all() for r in rows)
    assert np.mean([r["loss"] for r in rows[-5:]]) < rows[0]["loss"] - 0.5
    hf = json.loads((result.model_dir / "config.json").read_text())
    assert hf["model_type"] == "gpt_neox" and hf["torch_dtype"] == "float32"
    assert result.model.dtype == jnp.bfloat16


def _np_conf_over_rankings(logits, targets, delta):
    """NumPy's Conf (tests/np_reference.py) for every ranking of the targets consistent with
    ``logits`` known to within ``delta``: a target whose logit lies within 2 delta of another's may
    rank either side of it. Returns the list (one value when no rank is ambiguous)."""
    import itertools

    from np_reference import np_decompose, np_token_stats

    logp, rank, _ = np_token_stats(logits, targets)
    z_y = logits[np.arange(len(targets)), targets][:, None]
    low = (logits > z_y + 2 * delta).sum(axis=1)
    high = (logits > z_y - 2 * delta).sum(axis=1) - 1  # the target itself is never above itself
    high = np.maximum(high, low)
    ambiguous = np.flatnonzero(high > low)
    choices = [range(low[i], high[i] + 1) for i in ambiguous]
    assert np.prod([len(c) for c in choices]) <= 4096, "too many ambiguous ranks to enumerate"
    out = []
    for combo in itertools.product(*choices):
        r = rank.copy()
        r[ambiguous] = combo
        out.append(np_decompose(logp, r)["conf"])
    return out


def test_logged_proxy_loss_is_numpys_on_the_first_batch(tmp_path):
    """The first logged row of a float32 run with lam = 0.3 holds the proxy loss of the initial
    model (init_model with the run's seed) on the stream's batch 0, computed here independently:
    the model's logits (compute_logits), then CE and Conf of the scored tokens in float64 NumPy
    (tests/np_reference.py), loss = CE + 0.3 Conf. The trainer's logits and compute_logits are
    two float32 routes through the same model: they differ by float32 rounding only (measured
    2026-12-02, 2-core CPU, JAX 0.10.2: 3.0e-8 at |logits| <= 0.4; bound LOGITS_TWO_ROUTES_ABS
    1e-6), which moves CE and the per-rank means by at most twice that; a target within twice
    that of another logit may rank on either side, so Conf is checked against the closest of
    NumPy's values over those rankings (one when none is ambiguous)."""
    import jax.numpy as jnp

    from np_reference import np_token_stats
    from rce_jax.models import init_model
    from rce_jax.train.presets import build_model_config
    from tolerances import LOGITS_TWO_ROUTES_ABS, LOSS_F32_ABS

    d = tiny_config_dict(tmp_path, steps=2, log_every=1, **{"eval.every": 0, "loss.lam": 0.3,
                                                           "optim.warmup_steps": 1})
    config = TrainConfig.from_dict(d)
    first = train(config, tmp_path / "run", progress=False, verbose=False).rows[0]
    assert first["step"] == 1

    tok = get_tokenizer(config.tokenizer, config.data.train, verbose=False)
    model = init_model(build_model_config(config.model, tok, config.context_length), seed=config.seed)
    stream = TrainStream.from_corpora(config.data.train, tok, seq_len=config.context_length,
                                      seed=config.seed, cache_dir=config.data.cache_dir)
    batch = stream.batch(0, config.batch_size)
    logits = np.asarray(compute_logits(model, jnp.asarray(batch.input_ids),
                                       segment_ids_BxL=jnp.asarray(batch.segment_ids)), np.float64)
    scored = np.asarray(batch.score_mask)
    z, y = logits[scored], np.asarray(batch.target_ids)[scored]
    ce = -np.mean(np_token_stats(z, y)[0])
    tol = LOSS_F32_ABS + 2 * LOGITS_TWO_ROUTES_ABS
    assert first["scored_tokens"] == int(scored.sum())
    assert first["ce"] == pytest.approx(ce, rel=0, abs=tol)
    confs = _np_conf_over_rankings(z, y, LOGITS_TWO_ROUTES_ABS)
    conf = min(confs, key=lambda c: abs(c - first["conf"]))
    assert first["conf"] == pytest.approx(conf, rel=0, abs=tol)
    assert first["loss"] == pytest.approx(ce + 0.3 * conf, rel=0, abs=tol)
