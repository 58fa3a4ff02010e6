"""Scaling-law fits: planted laws are recovered exactly; noisy fits agree with numpy.polyfit."""

import csv
import io
import json

import numpy as np
import pytest
from np_reference import fresh_rng

from rce_jax.fits import fit_power_law, fit_with_irreducible
from rce_jax.report import scaling_report
from tolerances import (F64_SAME_ROUTE_ABS, FIT_INTEGER_N_R2_ABS, FIT_INTEGER_N_SLOPE_ABS,
                        FIT_INTERCEPT_EXACT_ABS, FIT_PREDICT_EXACT_REL, FIT_R2_EXACT_ABS,
                        FIT_SLOPE_EXACT_ABS, FIT_TWO_ROUTES_INTERCEPT_ABS,
                        FIT_TWO_ROUTES_SLOPE_ABS, NONLINEAR_FIT_R2_ABS, NONLINEAR_FIT_REL)


def test_planted_power_law_is_recovered_exactly():
    """M = exp(c) N^alpha gives back alpha and c, with R^2 = 1."""
    rng = fresh_rng()
    alpha, c = rng.uniform(-0.5, 0.5), rng.uniform(-2, 2)
    n = np.sort(rng.uniform(1e6, 1e10, 8))
    fit = fit_power_law(n, np.exp(c) * n**alpha)
    assert fit.slope == pytest.approx(alpha, abs=FIT_SLOPE_EXACT_ABS)
    assert fit.intercept == pytest.approx(c, abs=FIT_INTERCEPT_EXACT_ABS)
    assert fit.r2 == pytest.approx(1.0, abs=FIT_R2_EXACT_ABS)
    np.testing.assert_allclose(fit.predict(n), np.exp(c) * n**alpha, rtol=FIT_PREDICT_EXACT_REL)


def test_noisy_fit_agrees_with_polyfit():
    rng = fresh_rng()
    n = np.geomspace(1e7, 1e10, 12)
    m = -(3.0 * n**-0.07) * np.exp(rng.normal(0, 0.05, n.size))  # negative: fitted on |M|
    fit = fit_power_law(n, m)
    slope, intercept = np.polyfit(np.log(n), np.log(np.abs(m)), 1)
    assert fit.slope == pytest.approx(slope, abs=FIT_TWO_ROUTES_SLOPE_ABS)
    assert fit.intercept == pytest.approx(intercept, abs=FIT_TWO_ROUTES_INTERCEPT_ABS)
    r = np.corrcoef(np.log(n), np.log(np.abs(m)))[0, 1]
    assert fit.r2 == pytest.approx(r**2, abs=FIT_TWO_ROUTES_SLOPE_ABS)
    assert fit.r2 < 1.0


def test_irreducible_term_is_recovered():
    """CE = A N^-alpha + E planted without noise comes back to NONLINEAR_FIT_REL."""
    rng = fresh_rng()
    A, alpha, E = rng.uniform(5, 50), rng.uniform(0.05, 0.3), rng.uniform(1.0, 2.5)
    n = np.geomspace(1e6, 1e10, 9)
    fit = fit_with_irreducible(n, A * n**-alpha + E)
    assert fit.A == pytest.approx(A, rel=NONLINEAR_FIT_REL)
    assert fit.alpha == pytest.approx(alpha, rel=NONLINEAR_FIT_REL)
    assert fit.E == pytest.approx(E, rel=NONLINEAR_FIT_REL)
    assert fit.r2 == pytest.approx(1.0, abs=NONLINEAR_FIT_R2_ABS)


def test_irreducible_fit_needs_four_distinct_sizes():
    """Three parameters need four distinct sizes (three would be fitted exactly, whatever the data),
    however many models share them."""
    with pytest.raises(ValueError, match="4 distinct sizes; got 3"):
        fit_with_irreducible([1e6, 1e6, 1e7, 1e8], [3.0, 3.1, 2.5, 2.2])


@pytest.mark.parametrize(
    "n,m,message",
    [
        ([1e6], [2.0], "at least 2 models"),
        ([1e6, 1e6], [2.0, 3.0], "same size"),
        ([1e6, -1.0], [2.0, 3.0], "finite and positive"),
        ([1e6, 1e7], [2.0, 0.0], "non-zero"),
        ([1e6, 1e7], [2.0, np.nan], "finite"),
    ],
)
def test_degenerate_inputs_are_refused(n, m, message):
    with pytest.raises(ValueError, match=message):
        fit_power_law(n, m)


def _records(rng):
    """Two families on one dataset with planted laws: EE clean, SA noisy."""
    out = []
    for fam, sizes, a_ee in (("pythia", np.geomspace(1e7, 1e9, 5), -0.05), ("opt", np.geomspace(2e7, 2e9, 4), -0.06)):
        for i, n in enumerate(sizes):
            ee = 4.0 * n**a_ee
            sa = 1.0 + 0.1 * rng.random()
            conf = 0.5 * n**0.02
            out.append({"model": f"{fam}-{i}", "family": fam, "dataset": "wiki", "n_params": int(n * 1.3),
                        "n_params_non_embedding": int(n), "ce": ee + sa - conf, "ee": ee, "sa": sa, "conf": conf})
    return out


def test_report_fits_each_family_and_the_mix(tmp_path):
    rng = fresh_rng()
    recs = _records(rng)
    report = scaling_report(recs)
    groups = {(r["family"], r["metric"]): r for r in report.rows}
    assert {f for f, _ in groups} == {"pythia", "opt", "all"}
    # EE was planted as a power law in the non-embedding N of each family.
    assert groups["pythia", "ee"]["slope"] == pytest.approx(-0.05, abs=FIT_INTEGER_N_SLOPE_ABS)
    assert groups["pythia", "ee"]["r2"] == pytest.approx(1.0, abs=FIT_INTEGER_N_R2_ABS)
    assert groups["opt", "ee"]["slope"] == pytest.approx(-0.06, abs=FIT_INTEGER_N_SLOPE_ABS)
    for (fam, metric), row in groups.items():
        assert row["abs_delta_vs_ce"] == pytest.approx(abs(row["slope"] - groups[fam, "ce"]["slope"]), abs=F64_SAME_ROUTE_ABS)
    assert {r["family"] for r in report.irreducible} == {"pythia", "opt", "all"}
    # The mixed fit equals a fit over all nine models.
    mixed = [r for r in recs]
    n = np.array([r["n_params_non_embedding"] for r in mixed], float)
    slope = np.polyfit(np.log(n), np.log([r["ee"] for r in mixed]), 1)[0]
    assert groups["all", "ee"]["slope"] == pytest.approx(slope, abs=FIT_TWO_ROUTES_SLOPE_ABS)

    paths = report.write(tmp_path)
    text = paths["md"].read_text()
    assert "non-embedding parameters" in text
    rows = list(csv.DictReader(io.StringIO(paths["csv"].read_text())))
    assert len(rows) == len(report.rows) and rows[0]["n_used"] == "non_embedding"
    js = json.loads(paths["json"].read_text())
    assert js["n_used"] == "non_embedding" and len(js["models"]) == 9


def test_report_with_total_parameters_says_so():
    report = scaling_report(_records(fresh_rng()), n_key="total")
    assert report.to_dict()["n_used"] == "total"
    assert report.to_markdown().startswith("N = total parameters")


def test_report_refuses_bad_records():
    with pytest.raises(ValueError, match="no results"):
        scaling_report([])
    with pytest.raises(ValueError, match=r"lacks fields \['ee'\]"):
        scaling_report([{"model": "m", "family": "f", "dataset": "d", "n_params_non_embedding": 5,
                         "ce": 1.0, "sa": 1.0, "conf": 1.0}])
    with pytest.raises(ValueError, match="n_key"):
        scaling_report(_records(fresh_rng()), n_key="embedding")


def test_report_refuses_a_model_given_twice():
    """A record passed twice (e.g. a results folder and one of its files) would be fitted twice."""
    recs = _records(fresh_rng())
    with pytest.raises(ValueError, match="'pythia-0' on 'wiki' appears twice"):
        scaling_report(recs + [recs[0]])


def test_zero_cross_entropy_gives_a_nan_share():
    """EE/CE of a record with CE = 0 is NaN (as Decomposition.ee_share), never ZeroDivisionError."""
    from rce_jax.report import model_row

    rec = {"model": "m", "family": "f", "dataset": "d", "n_params_non_embedding": 5,
           "ce": 0.0, "ee": 0.0, "sa": 0.0, "conf": 0.0}
    assert np.isnan(model_row(rec, "n_params_non_embedding")["ee_share"])
