"""Intervals of the scaling fits: OLS standard errors, coverage in simulated studies, leave-one-
model-out ranges, paired bootstrap intervals, claims only where resolved, honest pooling."""

import csv
import io
import json

import numpy as np
import pytest
from np_reference import fresh_rng
from scipy import stats as sps

from rce_jax.bootstrap import percentile_interval, poisson_weights
from rce_jax.fits import compare, fit_metrics, fit_power_law, leave_one_out
from rce_jax.report import scaling_report
from tolerances import (COVERAGE_TAIL, FIT_INTEGER_N_SLOPE_ABS, FIT_INTERVAL_VS_SCIPY_REL, FIT_SE_VS_SCIPY_REL,
                        FIT_SLOPE_VS_SCIPY_REL, FIT_TWO_ROUTES_REL)

N6 = np.geomspace(1e4, 1e7, 6)
ALPHA = 0.12


def _acceptance(studies: int, p: float, tail: float = COVERAGE_TAIL) -> tuple[int, int]:
    """The counts a correct procedure lands outside with probability <= 2 * tail (binomial)."""
    return int(sps.binom.ppf(tail, studies, p)), int(sps.binom.isf(tail, studies, p))


def test_slope_standard_error_and_interval_equal_scipy():
    """slope_se equals scipy.stats.linregress's stderr; the interval is slope -+ t(0.975, n-2) se."""
    rng = fresh_rng()
    n = np.sort(rng.uniform(1e4, 1e8, 7))
    m = 3.0 * n ** -0.1 * np.exp(rng.normal(0, 0.05, n.size))
    fit = fit_power_law(n, m)
    ref = sps.linregress(np.log(n), np.log(m))
    assert fit.slope == pytest.approx(ref.slope, rel=FIT_SLOPE_VS_SCIPY_REL)
    assert fit.slope_se == pytest.approx(ref.stderr, rel=FIT_SE_VS_SCIPY_REL)
    t = sps.t.ppf(0.975, n.size - 2)
    assert (fit.slope_lo, fit.slope_hi) == pytest.approx((ref.slope - t * ref.stderr, ref.slope + t * ref.stderr),
                                                        rel=FIT_INTERVAL_VS_SCIPY_REL)
    lo, hi = fit.band(n)
    assert (lo < fit.predict(n)).all() and (fit.predict(n) < hi).all()
    two = fit_power_law(n[:2], m[:2])
    assert np.isnan(two.slope_se) and np.isnan(two.band(n)[0]).all()


def test_ols_intervals_cover_the_planted_slope_in_95_of_100_studies():
    """100 studies, each six models on a planted law log M = log 8 - 0.12 log N + eps with
    eps ~ N(0, 0.03^2): the 95% OLS intervals cover alpha in a count that a correct procedure
    falls outside with probability <= 0.1% (binomial, 87..100); the 80% intervals likewise (a too
    wide interval would cover too often); a naive +-1 se interval (68% nominal with a t on 4 d.o.f.:
    ~63%) falls outside the 95% bounds, so the test can fail."""
    rng = fresh_rng()
    covered = {0.95: 0, 0.80: 0}
    naive = 0
    for _ in range(100):
        m = 8.0 * N6 ** -ALPHA * np.exp(rng.normal(0, 0.03, N6.size))
        for level in covered:
            f = fit_power_law(N6, m, level)
            covered[level] += f.slope_lo <= -ALPHA <= f.slope_hi
        naive += abs(f.slope + ALPHA) <= f.slope_se
    for level, count in covered.items():
        lo, hi = _acceptance(100, level)
        print(f"{level:.0%} intervals covered alpha in {count}/100 studies (accept {lo}..{hi})")
        assert lo <= count <= hi
    lo, _ = _acceptance(100, 0.95)
    assert naive < lo, naive


def test_document_bootstrap_intervals_cover_the_planted_slope():
    """100 studies whose only noise is the sample of documents: model m's metric is the mean over
    300 documents of A N_m^-alpha g_d h_dm (E g = E h = 1, so the population law is exact); the
    95% percentile intervals of the Poisson-bootstrap slopes (200 replicates, the same document
    weights for every model) cover alpha within the binomial bounds (measured: 376/400 = 0.94 in a
    longer run, seed 1)."""
    rng = fresh_rng()
    covered = 0
    for s in range(100):
        g = rng.gamma(4, 1 / 4, 300)
        h = rng.gamma(20, 1 / 20, (300, N6.size))
        x_DxM = 8.0 * N6[None, :] ** -ALPHA * g[:, None] * h
        keys = rng.integers(0, 2**63, 300).astype(np.uint64)
        w_RxD = poisson_weights(keys, 200, seed=s).astype(float)
        reps_MxR = ((w_RxD @ x_DxM) / w_RxD.sum(1)[:, None]).T
        rows, _ = fit_metrics(N6, {"ce": x_DxM.mean(0)}, {"ce": reps_MxR})
        covered += rows["ce"]["boot_slope_lo"] <= -ALPHA <= rows["ce"]["boot_slope_hi"]
    lo, hi = _acceptance(100, 0.95)
    print(f"bootstrap intervals covered alpha in {covered}/100 studies (accept {lo}..{hi})")
    assert lo <= covered <= hi


def test_leave_one_out_and_paired_bootstrap_against_polyfit():
    """LOO ranges equal min/max of np.polyfit without each model; bootstrap intervals equal the
    percentiles of np.polyfit per replicate; |Delta| and R^2 differences pair replicate b of
    both metrics."""
    rng = fresh_rng()
    n = np.geomspace(1e5, 1e8, 5)
    vals = {"ce": 4 * n ** -0.08 * np.exp(rng.normal(0, 0.02, 5)),
            "ee": 2 * n ** -0.1 * np.exp(rng.normal(0, 0.01, 5))}
    reps = {k: v[:, None] * np.exp(rng.normal(0, 0.01, (5, 60))) for k, v in vals.items()}
    rows, comps = fit_metrics(n, vals, reps)
    x = np.log(n)

    def fit(xs, ys):
        slope, icpt = np.polyfit(xs, ys, 1)
        res = ys - (icpt + slope * xs)
        return slope, 1 - res @ res / np.sum((ys - ys.mean()) ** 2)

    for k in vals:
        loo = [fit(np.delete(x, i), np.log(np.delete(vals[k], i))) for i in range(5)]
        assert rows[k]["loo_slope_min"] == pytest.approx(min(s for s, _ in loo), rel=FIT_TWO_ROUTES_REL)
        assert rows[k]["loo_r2_max"] == pytest.approx(max(r for _, r in loo), rel=FIT_TWO_ROUTES_REL)
        per = np.array([fit(x, np.log(reps[k][:, b])) for b in range(60)])
        assert (rows[k]["boot_slope_lo"], rows[k]["boot_slope_hi"]) == pytest.approx(
            percentile_interval(per[:, 0], 0.95), rel=FIT_TWO_ROUTES_REL)
        assert (rows[k]["boot_r2_lo"], rows[k]["boot_r2_hi"]) == pytest.approx(
            percentile_interval(per[:, 1], 0.95), rel=FIT_TWO_ROUTES_REL)
    ce = np.array([fit(x, np.log(reps["ce"][:, b])) for b in range(60)])
    ee = np.array([fit(x, np.log(reps["ee"][:, b])) for b in range(60)])
    r2diff = next(c for c in comps if c["comparison"] == "R^2(ee) - R^2(ce)")
    assert (r2diff["boot_lo"], r2diff["boot_hi"]) == pytest.approx(
        percentile_interval(ee[:, 1] - ce[:, 1], 0.95), rel=FIT_TWO_ROUTES_REL)
    assert (rows["ee"]["boot_abs_delta_lo"], rows["ee"]["boot_abs_delta_hi"]) == pytest.approx(
        percentile_interval(np.abs(ee[:, 0] - ce[:, 0]), 0.95), rel=FIT_TWO_ROUTES_REL)
    assert len(leave_one_out(n[:2], vals["ce"][:2])) == 0


def test_a_claim_is_resolved_only_when_intervals_exclude_zero():
    """compare() resolves a difference only when the bootstrap interval and every LOO value lie on
    one side of zero, and says why otherwise."""
    assert compare("d", 0.02, [0.01, 0.03], np.linspace(0.005, 0.03, 50), 0.95)["resolved"]
    c = compare("d", 0.02, [0.01, 0.03], np.linspace(-0.01, 0.03, 50), 0.95)
    assert not c["resolved"] and "contains zero" in c["unresolved_because"]
    c = compare("d", 0.02, [-0.01, 0.03], np.linspace(0.005, 0.03, 50), 0.95)
    assert not c["resolved"] and "leaving one model out" in c["unresolved_because"]
    assert not compare("d", 0.02, [0.01], None, 0.95)["resolved"]


def _record(model, family, n, ce, ee, *, vocab, fp, reps=None, boot=None):
    rec = {"model": model, "family": family, "dataset": "wiki", "n_params": n, "n_params_non_embedding": n,
           "ce": ce, "ee": ee, "sa": ce - ee + 0.3, "conf": 0.3,
           "settings": {"tokenizer_size": vocab, "tokenizer_fingerprint": fp, "bootstrap": boot}}
    if reps is not None:
        rec["intervals"] = {"replicates_values": reps,
                            **{k: {"lo": min(v), "hi": max(v)} for k, v in reps.items()}}
    return rec


def test_report_states_tokenizers_irreducible_and_unresolved_claims(tmp_path):
    """A mixed fit over families with different tokenizers records both and says so; a family of
    three sizes gets no irreducible fit, with the reason; without replicates no claim is resolved
    and the tables say why; md, csv and json carry the intervals."""
    rng = fresh_rng()
    recs = []
    for fam, vocab, fp, sizes in (("a", 32000, "f" * 64, [1e6, 1e7, 1e8]), ("b", 50257, "e" * 64, [2e6, 2e7, 2e8, 2e9])):
        for i, n in enumerate(sizes):
            ee = 3 * n ** -0.05
            recs.append(_record(f"{fam}{i}", fam, int(n), ee + 1.0 + 0.05 * rng.random(), ee, vocab=vocab, fp=fp))
    report = scaling_report(recs)
    mixed = next(g for g in report.notes if g["family"] == "all")
    assert mixed["tokenizers_differ"] and {t["vocab_size"] for t in mixed["tokenizers"]} == {32000, 50257}
    assert not next(g for g in report.notes if g["family"] == "a")["tokenizers_differ"]
    irr = {r["family"]: r for r in report.irreducible}
    assert not irr["a"]["fitted"] and "3 distinct sizes" in irr["a"]["reason"]
    assert irr["b"]["fitted"] and irr["all"]["fitted"]
    assert all(not c["resolved"] and "bootstrap" in c["unresolved_because"] for c in report.comparisons)
    paths = report.write(tmp_path)
    md = paths["md"].read_text()
    assert "different tokenizers" in md and "32000 entries" in md and "not fitted: 3 distinct sizes" in md
    assert "+- " in md and "not resolved" in md
    rows = list(csv.DictReader(io.StringIO(paths["csv"].read_text())))
    assert {"slope_se", "loo_slope_min", "boot_r2_lo"} <= set(rows[0])
    js = json.loads(paths["json"].read_text())
    assert js["comparisons"] and js["groups"] and "replicates" not in js["models"][0]


def test_paired_replicates_flow_from_results_into_the_report():
    """Results with replicates under one bootstrap setting get bootstrap intervals of every fit;
    a planted case (EE an exact power law in every replicate, CE noisy) resolves R^2(EE) > R^2(CE);
    results under different seeds are not paired, and the report says so."""
    rng = fresh_rng()
    n = np.geomspace(1e5, 1e8, 6)
    boot = {"replicates": 40, "seed": 0, "level": 0.95}
    recs = []
    shift = rng.normal(0, 0.002, 40)  # a replicate's shift, shared by every model (paired)
    for i, size in enumerate(n):
        ee = 2 * size ** -0.1
        ce = 5 * size ** -0.05 * (1 + 0.03 * (-1) ** i)
        reps = {"ce": list(ce * (1 + shift + rng.normal(0, 1e-4, 40))), "ee": list(ee * (1 + shift)),
                "sa": [1.0] * 40, "conf": [0.3] * 40, "ee_share": list(ee / ce * np.ones(40))}
        recs.append(_record(f"m{i}", "f", int(size), ce, ee, vocab=100, fp="x", reps=reps, boot=boot))
    report = scaling_report(recs, metrics=("ce", "ee"))
    ee_row = next(r for r in report.rows if r["metric"] == "ee")
    # Every replicate of EE is the planted law times a constant: its slope is -0.1 up to the
    # rounding of N to integer parameter counts (relative 1e-5 at N = 1e5: FIT_INTEGER_N_SLOPE_ABS).
    assert ee_row["bootstrap_replicates"] == 40
    assert ee_row["boot_slope_lo"] == pytest.approx(-0.1, abs=FIT_INTEGER_N_SLOPE_ABS)
    assert ee_row["boot_slope_hi"] == pytest.approx(-0.1, abs=FIT_INTEGER_N_SLOPE_ABS)
    c = next(c for c in report.comparisons if c["comparison"] == "R^2(ee) - R^2(ce)")
    assert c["resolved"] and c["sign"] == 1
    recs[0]["settings"]["bootstrap"] = {**boot, "seed": 1}
    report = scaling_report(recs, metrics=("ce", "ee"))
    assert "do not pair" in report.to_markdown()
