"""The document bootstrap: Poisson(1) weights from a hash, weighted per-rank statistics equal to
resampling the corpus by hand, and invariance to batching, order, merging and resume."""

import math

import numpy as np
import pytest
from np_reference import fresh_rng, np_decompose
from scipy import stats as sps

from rce_jax.bootstrap import (BootstrapStats, decompose_replicates, document_keys, percentile_interval,
                               poisson_weights)
from tolerances import (CHI_SQUARE_P_MIN, DECOMPOSITION_F64_TWO_ROUTES_REL, F64_SUM_FLOOR_ABS, F64_SUM_REL,
                        PERCENTILE_TWO_ROUTES_REL, POISSON_MOMENT_SIGMAS, REPLICATE_METRICS_TWO_ROUTES_ABS,
                        REPLICATE_METRICS_TWO_ROUTES_REL, REPLICATES_TWO_BATCHINGS_ABS)


def _tokens(rng, n_docs=30, vocab=50):
    """Random documents of random length: per token (rank, log s, document index)."""
    lengths = rng.integers(1, 40, n_docs)
    doc = np.repeat(np.arange(n_docs), lengths)
    rank = np.minimum(rng.geometric(0.3, doc.size) - 1, vocab - 1)
    logp = -rng.gamma(2.0, 1.0, doc.size) - 0.01 * rank
    texts = [f"document {i} {rng.integers(1 << 30)}" for i in range(n_docs)]
    return rank, logp, doc, texts, vocab


def test_poisson_weights_have_poisson1_moments_and_depend_only_on_key():
    """Over 2e5 (document, replicate) draws the weights have mean 1, variance 1 and P(0) = 1/e
    within 5 standard errors (se of the mean 1/sqrt(n) = 2.2e-3; of the variance sqrt(3/n) ~
    3.9e-3 for Poisson(1), whose fourth central moment is 4; of P(0) sqrt(e^-1(1-e^-1)/n) =
    1.1e-3); and a document's weights do not depend on which other documents are drawn with it."""
    rng = fresh_rng()
    keys = rng.integers(0, 2**63, 2000, dtype=np.int64).astype(np.uint64)
    w = poisson_weights(keys, 100, seed=3)
    n = w.size
    assert abs(w.mean() - 1) < POISSON_MOMENT_SIGMAS / math.sqrt(n)
    assert abs(w.var() - 1) < POISSON_MOMENT_SIGMAS * math.sqrt(3 / n)
    p0 = math.exp(-1)
    assert abs((w == 0).mean() - p0) < POISSON_MOMENT_SIGMAS * math.sqrt(p0 * (1 - p0) / n)
    # Chi-square goodness of fit to Poisson(1) over 0..4 and >= 5 (tests/tolerances.py).
    observed = [np.sum(w == k) for k in range(5)] + [np.sum(w >= 5)]
    pk = [sps.poisson.pmf(k, 1) for k in range(5)] + [sps.poisson.sf(4, 1)]
    assert sps.chisquare(observed, np.array(pk) * n).pvalue > CHI_SQUARE_P_MIN
    sub = rng.permutation(keys.size)[:100]
    np.testing.assert_array_equal(poisson_weights(keys[sub], 100, seed=3), w[:, sub])
    assert not np.array_equal(poisson_weights(keys, 100, seed=4), w)


def test_document_keys_come_from_text_and_separate_copies():
    """Same texts, same keys (in any list that holds them in the same order of copies); the second
    copy of a text gets another key than the first."""
    k = document_keys(["a", "b", "a", "c"])
    assert k[0] != k[2] and len(set(k.tolist())) == 4
    np.testing.assert_array_equal(document_keys(["a", "b"]), k[:2])
    assert document_keys(["x", "a"])[1] == k[0]


def test_weighted_statistics_equal_resampling_the_corpus_by_hand():
    """Per replicate, the weighted count and sum of log s per rank, and CE/EE/SA/Conf, equal those
    of the corpus in which document d is repeated w_bd times (independent dict-based NumPy)."""
    rng = fresh_rng()
    rank, logp, doc, texts, vocab = _tokens(rng)
    keys = document_keys(texts)
    boot = BootstrapStats(vocab, 40, seed=int(rng.integers(1000)))
    boot.add_tokens(rank, logp, keys[doc])
    count, total = boot.dense()
    w = poisson_weights(keys, 40, seed=boot.seed)
    metrics = boot.replicate_metrics()
    for b in range(40):
        rep = np.repeat(np.arange(doc.size), w[b, doc])  # token i appears w_b(doc(i)) times
        np.testing.assert_array_equal(count[b], np.bincount(rank[rep], minlength=vocab))
        expected_sum = np.zeros(vocab)
        for i in rep:
            expected_sum[rank[i]] += logp[i]
        np.testing.assert_allclose(total[b], expected_sum, rtol=F64_SUM_REL, atol=F64_SUM_FLOOR_ABS)
        if rep.size:
            ref = np_decompose(logp[rep], rank[rep])
            for k in ("ce", "ee", "sa", "conf"):
                assert metrics[k][b] == pytest.approx(ref[k], rel=REPLICATE_METRICS_TWO_ROUTES_REL,
                                                      abs=REPLICATE_METRICS_TWO_ROUTES_ABS)
            assert metrics["ee_share"][b] == pytest.approx(ref["ee"] / ref["ce"], rel=REPLICATE_METRICS_TWO_ROUTES_REL)
        else:
            assert math.isnan(metrics["ce"][b])


def test_batching_order_merging_and_resume_give_the_same_statistics(tmp_path):
    """Tokens folded in one batch, in random batches in random order, in two accumulators merged,
    or saved to a file half-way and continued after loading: the same counts (exactly) and sums
    (to float64 summation-order rounding, F64_SUM_REL)."""
    rng = fresh_rng()
    rank, logp, doc, texts, vocab = _tokens(rng, n_docs=60)
    keys = document_keys(texts)[doc]
    whole = BootstrapStats(vocab, 30, seed=7)
    whole.add_tokens(rank, logp, keys)
    order = rng.permutation(rank.size)
    cuts = np.sort(rng.choice(np.arange(1, rank.size), 9, replace=False))
    parts = np.split(order, cuts)
    batched, left, right = (BootstrapStats(vocab, 30, seed=7) for _ in range(3))
    for i, part in enumerate(parts):
        batched.add_tokens(rank[part], logp[part], keys[part])
        (left if i < 5 else right).add_tokens(rank[part], logp[part], keys[part])
    resumed = BootstrapStats(vocab, 30, seed=7)
    for part in parts[:4]:
        resumed.add_tokens(rank[part], logp[part], keys[part])
    resumed.save(tmp_path / "b.npz")
    resumed = BootstrapStats.load(tmp_path / "b.npz")
    for part in parts[4:]:
        resumed.add_tokens(rank[part], logp[part], keys[part])
    for other in (batched, left + right, resumed):
        c0, s0 = whole.dense()
        c1, s1 = other.dense()
        np.testing.assert_array_equal(c1, c0)
        np.testing.assert_allclose(s1, s0, rtol=F64_SUM_REL, atol=F64_SUM_FLOOR_ABS)


def test_incompatible_statistics_and_bad_files_are_refused(tmp_path):
    """Merging other replicates/seeds/vocabularies and loading a damaged file raise clear errors."""
    a = BootstrapStats(10, 5, seed=1)
    with pytest.raises(ValueError, match="different"):
        a.merge(BootstrapStats(10, 5, seed=2))
    with pytest.raises(ValueError, match="at least 2 replicates"):
        BootstrapStats(10, 1)
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"not a zip")
    with pytest.raises(ValueError, match="not a readable bootstrap"):
        BootstrapStats.load(bad)
    with pytest.raises(ValueError, match="ranks outside"):
        a.add_tokens([10], [-1.0], np.array([1], np.uint64))


def test_replicate_decomposition_and_percentiles_against_numpy():
    """decompose_replicates of a single row equals np_decompose; percentile_interval equals
    numpy's percentile of the finite values."""
    rng = fresh_rng()
    rank, logp, *_ = _tokens(rng)
    count = np.bincount(rank, minlength=50)[None, :]
    total = np.bincount(rank, weights=logp, minlength=50)[None, :]
    got = decompose_replicates(count, total)
    ref = np_decompose(logp, rank)
    for k in ("ce", "ee", "sa", "conf"):
        assert got[k][0] == pytest.approx(ref[k], rel=DECOMPOSITION_F64_TWO_ROUTES_REL)
    v = rng.normal(size=500)
    assert percentile_interval(list(v) + [float("nan"), None], 0.9) == pytest.approx(
        tuple(np.percentile(v, [5, 95])), rel=PERCENTILE_TWO_ROUTES_REL)


def test_eval_intervals_do_not_depend_on_batch_size_or_packing(tmp_path):
    """`rce-jax eval` with 8-row first-fit batches and with 3-row unpacked batches: the same
    replicate values (the model's float32 log s of two row layouts: measured up to 7e-7 nats apart
    on Conf, whose log-sum-exp is led by ranks of one or two tokens; REPLICATES_TWO_BATCHINGS_ABS), an interval
    that contains the point estimate, and the settings recorded."""
    pytest.importorskip("torch")
    from eval_fixtures import make_model_dir, write_corpus

    from rce_jax.cli import main
    import json

    make_model_dir(tmp_path / "m", seed=0)
    write_corpus(tmp_path / "c.jsonl", n_docs=30, seed=2, max_words=30)
    results = []
    for extra in (["--batch-size", "8"], ["--batch-size", "3", "--packing", "none"]):
        out = tmp_path / f"out{len(results)}"
        assert main(["eval", "--model", str(tmp_path / "m"), "--data", str(tmp_path / "c.jsonl"),
                     "--context-length", "16", "--out", str(out), "--no-progress", "--bootstrap", "50",
                     "--cache-dir", str(tmp_path / "cache"), *extra]) == 0
        results.append(json.loads(next(out.glob("*.json")).read_text()))
    a, b = results
    assert a["settings"]["bootstrap"] == {"replicates": 50, "level": 0.95, "seed": 0}
    for k in ("ce", "ee", "sa", "conf", "ee_share"):
        np.testing.assert_allclose(a["intervals"]["replicates_values"][k],
                                   b["intervals"]["replicates_values"][k], rtol=0,
                                   atol=REPLICATES_TWO_BATCHINGS_ABS)
    # CE is a ratio of sums: its interval holds the estimate. EE is the plug-in entropy of rank
    # counts (here ~1000 tokens over a 320-entry vocabulary): resampling repeats documents, fewer
    # distinct ranks occur, so the replicates' EE is lower: the bootstrap sees the bias.
    assert a["intervals"]["ce"]["lo"] <= a["ce"] <= a["intervals"]["ce"]["hi"]
    assert a["intervals"]["ee"]["bias"] < 0
