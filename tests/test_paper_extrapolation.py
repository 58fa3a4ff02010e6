"""rce_jax.paper.extrapolation (``experiments/extrapolation.py``): fit on the smaller models,
forecast the larger (issue 6, d).

Planted laws with fresh random parameters: the EE-law forecast must be exact when EE is a pure
power law and SA - Conf is the same for every model, while the plain CE power law errs by exactly
what an independent float64 NumPy fit predicts; and the other way round when CE itself is the
power law. Bad inputs raise errors that name the problem.
"""

import csv
import json

import numpy as np
import pytest
from tolerances import (EXACT_LAW_FORECAST_REL, F64_TWO_ROUTES_REL,
                        FORECAST_ERROR_TWO_ROUTES_REL, FORECAST_TWO_ROUTES_REL,
                        MISSES_BY_MORE_THAN, MISSES_BY_MORE_THAN_CE_LAW, NONLINEAR_FIT_REL,
                        NONLINEAR_FORECAST_REL)

from rce_jax.paper import extrapolation as ex


def planted(rng, *, n_models=7, family="fam", dataset="ds", ee=None, offset=None, ce=None):
    """Model rows with sizes log-uniform over 1e6..1e10; SA random per model; Conf chosen so that
    SA - Conf = offset(N) (EE given) or EE = CE - offset(N) (CE given)."""
    n = np.sort(np.exp(rng.uniform(np.log(1e6), np.log(1e10), n_models))).astype(np.int64)
    rows = []
    for i, size in enumerate(n):
        d = offset(float(size))
        e = ee(float(size)) if ee is not None else ce(float(size)) - d
        sa = rng.uniform(0.05, 0.6)
        rows.append({"model": f"{family}-{i}", "family": family, "dataset": dataset, "n": int(size),
                     "ce": e + d, "ee": e, "sa": sa, "conf": sa - d})
    return rows


def np_power_law_forecast(n_fit, y_fit, n_new):
    """Independent reference: np.polyfit of log y on log N (float64), evaluated at n_new."""
    slope, intercept = np.polyfit(np.log(np.asarray(n_fit, float)), np.log(np.asarray(y_fit, float)), 1)
    return np.exp(intercept + slope * np.log(float(n_new)))


def by_method(group, method):
    return {r["model"]: r for r in group.rows if r["method"] == method}


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_ee_law_exact_when_sa_minus_conf_constant_and_ce_power_law_errs(seed):
    """EE = a N^-b and SA - Conf = d for every model: the EE-law CE forecast (and the EE forecast)
    of each held-out model equals the truth to 1e-12 relative; the CE power law's forecast equals
    an independent np.polyfit forecast (1e-10) and is off by more than 1e-3 relative."""
    rng = np.random.default_rng(seed)
    a, b, d = rng.uniform(20, 60), rng.uniform(0.08, 0.25), rng.uniform(0.8, 2.0) * rng.choice([-1, 1])
    rows = planted(rng, ee=lambda n: a * n ** -b, offset=lambda n: d)
    assert min(r["ce"] for r in rows) > 0
    g = ex.extrapolate(rows, holdout=2).groups[0]
    fitted = sorted(rows, key=lambda r: r["n"])[:-2]
    assert [m["model"] for m in g.fitted] == [m["model"] for m in fitted]
    assert len(g.held_out) == 2 and all(h["n"] >= fitted[-1]["n"] for h in g.held_out)
    for h in g.held_out:
        assert by_method(g, "ee_law")[h["model"]]["rel_error"] < EXACT_LAW_FORECAST_REL
        assert by_method(g, "ee_power_law")[h["model"]]["rel_error"] < EXACT_LAW_FORECAST_REL
        ref = np_power_law_forecast([m["n"] for m in fitted], [m["ce"] for m in fitted], h["n"])
        row = by_method(g, "ce_power_law")[h["model"]]
        assert row["forecast"] == pytest.approx(ref, rel=FORECAST_TWO_ROUTES_REL)
        assert row["error"] == pytest.approx(ref - h["ce"], rel=FORECAST_ERROR_TWO_ROUTES_REL)
        assert row["rel_error"] > MISSES_BY_MORE_THAN_CE_LAW


def test_irreducible_fit_exact_when_well_specified_and_errs_when_not():
    """CE = A N^-alpha + E with E > 0 planted (SA - Conf = E > 0): the irreducible fit forecasts
    to 1e-9 relative. With SA - Conf < 0, CE = EE + d has no non-negative irreducible term: that
    fit errs by more than 1e-4 relative while the EE law stays exact (1e-12)."""
    rng = np.random.default_rng(10)
    rows = planted(rng, ee=lambda n: 35.0 * n ** -0.15, offset=lambda n: 0.6)
    g = ex.extrapolate(rows, holdout=2).groups[0]
    assert all(r["rel_error"] < NONLINEAR_FORECAST_REL for r in by_method(g, "ce_irreducible").values())
    fit = g.fits["ce_irreducible"]
    assert (fit.A, fit.alpha, fit.E) == pytest.approx((35.0, 0.15, 0.6), rel=NONLINEAR_FIT_REL)

    rows = planted(rng, ee=lambda n: 35.0 * n ** -0.15, offset=lambda n: -0.9)
    g = ex.extrapolate(rows, holdout=2).groups[0]
    assert all(r["rel_error"] > MISSES_BY_MORE_THAN for r in by_method(g, "ce_irreducible").values())
    assert all(r["rel_error"] < EXACT_LAW_FORECAST_REL for r in by_method(g, "ee_law").values())


def test_ee_law_error_is_the_drift_of_sa_minus_conf():
    """With EE a pure power law and SA - Conf = d0 + s log N, the EE-law error of a held-out model
    is exactly mean_F(SA - Conf) - (SA - Conf)_m (to 1e-12)."""
    rng = np.random.default_rng(3)
    rows = planted(rng, n_models=8, ee=lambda n: 50.0 * n ** -0.2, offset=lambda n: 0.3 + 0.05 * np.log(n))
    g = ex.extrapolate(rows, holdout=3).groups[0]
    mean_d = np.mean([m["sa"] - m["conf"] for m in g.fitted])
    assert g.fits["sa_minus_conf"] == pytest.approx(mean_d, abs=F64_TWO_ROUTES_REL)
    for h in g.held_out:
        assert by_method(g, "ee_law")[h["model"]]["error"] == pytest.approx(mean_d - (h["sa"] - h["conf"]), abs=EXACT_LAW_FORECAST_REL)


def test_ce_power_law_exact_when_ce_is_the_power_law_and_ee_law_errs():
    """CE = c N^-a exactly and EE = CE - d: the CE power law forecasts to 1e-12 relative; the EE
    law (EE is then not a power law) errs by more than 1e-4 relative."""
    rng = np.random.default_rng(4)
    rows = planted(rng, ce=lambda n: 30.0 * n ** -0.1, offset=lambda n: -1.0)
    g = ex.extrapolate(rows, holdout=2).groups[0]
    assert all(r["rel_error"] < EXACT_LAW_FORECAST_REL for r in by_method(g, "ce_power_law").values())
    assert all(r["rel_error"] > MISSES_BY_MORE_THAN for r in by_method(g, "ee_law").values())


def test_groups_mixed_and_skipped():
    """Per (dataset, family) and mixed per dataset; a family too small to hold out is skipped with
    the reason; the mixed group holds out the largest models over all families."""
    rng = np.random.default_rng(5)
    big = planted(rng, n_models=6, family="big", ee=lambda n: 40 * n ** -0.1, offset=lambda n: 0.2)
    small = planted(rng, n_models=3, family="small", ee=lambda n: 40 * n ** -0.1, offset=lambda n: 0.2)
    res = ex.extrapolate(big + small, holdout=2)
    assert [(g.dataset, g.family) for g in res.groups] == [("ds", "big"), ("ds", "all")]
    assert res.skipped == [{"dataset": "ds", "family": "small", "n_models": 3,
                            "reason": "needs at least 4 models (2 held out, 2 to fit)"}]
    mixed = res.groups[1]
    everyone = sorted(big + small, key=lambda r: (r["n"], r["model"]))
    assert [m["model"] for m in mixed.held_out] == [m["model"] for m in everyone[-2:]]
    # every held-out model has one row per method (all four available: 7 fitted sizes)
    assert len(mixed.rows) == 2 * len(ex.METHODS)


def test_irreducible_not_available_with_two_fitted_sizes():
    """Four models, two held out: the irreducible fit (3 parameters) is reported as not available
    with the reason; the other methods still forecast."""
    rng = np.random.default_rng(6)
    g = ex.extrapolate(planted(rng, n_models=4, ee=lambda n: 40 * n ** -0.1, offset=lambda n: 0.2), 2).groups[0]
    assert g.unavailable == {"ce_irreducible": "needs at least 4 distinct fitted sizes, has 2"}
    assert {r["method"] for r in g.rows} == {"ce_power_law", "ee_law", "ee_power_law"}
    md = ex.Extrapolation("non_embedding", 2, [g], []).to_markdown()
    assert "ce_irreducible not available (needs at least 4 distinct fitted sizes, has 2)" in md


def test_bad_inputs():
    """Holdout not a positive int, no group large enough, broken identity, duplicate model,
    non-positive N, missing fields: ValueError naming the problem."""
    rng = np.random.default_rng(7)
    rows = planted(rng, n_models=5, ee=lambda n: 40 * n ** -0.1, offset=lambda n: 0.2)
    for bad in (0, -1, True, 1.5):
        with pytest.raises(ValueError, match="holdout must be a positive"):
            ex.extrapolate(rows, holdout=bad)
    with pytest.raises(ValueError, match="no group has enough models.*needs at least 6 models"):
        ex.extrapolate(rows, holdout=4)
    with pytest.raises(ValueError, match="a power law needs 2"):
        ex.forecast_group([dict(r, n=1000) for r in rows[:3]] + rows[3:], holdout=2)
    broken = [dict(r) for r in rows]
    broken[1]["sa"] += 0.01
    with pytest.raises(ValueError, match=r"fam-1.*!= EE \+ SA - Conf"):
        ex.extrapolate(broken)
    with pytest.raises(ValueError, match="appears twice"):
        ex.extrapolate(rows + [rows[0]])
    with pytest.raises(ValueError, match="must be finite and positive"):
        ex.extrapolate([dict(rows[0], n=0)] + rows[1:])
    with pytest.raises(ValueError, match=r"lacks \['sa'\]"):
        ex.extrapolate([{k: v for k, v in r.items() if k != "sa"} for r in rows])
    with pytest.raises(ValueError, match="no results"):
        ex.extrapolate([])


def eval_like(row, n_total):
    """An `rce-jax eval`-shaped record (only the fields the scripts read)."""
    out = {k: row[k] for k in ("model", "family", "dataset", "ce", "ee", "sa", "conf")}
    return {**out, "n_params_non_embedding": row["n"], "n_params": n_total}


def test_cli_files_and_report_input(tmp_path):
    """main() on a folder of result files writes md/csv/json and one figure per group; the CSV has
    one row per held-out model x method; the scaling.json report of the same results gives the
    same forecasts; bad paths and a report of another N fail with exit status 2."""
    from rce_jax.report import scaling_report

    rng = np.random.default_rng(8)
    rows = planted(rng, n_models=6, ee=lambda n: 40 * n ** -0.12, offset=lambda n: 0.3)
    records = [eval_like(r, r["n"] + 1000) for r in rows]
    res_dir = tmp_path / "results"
    res_dir.mkdir()
    for r in records:
        (res_dir / f"{r['model']}.json").write_text(json.dumps(r))
    assert ex.main([str(res_dir), "--out", str(tmp_path / "a")]) == 0
    out = json.loads((tmp_path / "a" / "extrapolation.json").read_text())
    with open(tmp_path / "a" / "extrapolation.csv") as f:
        table = list(csv.DictReader(f))
    assert len(table) == 2 * len(ex.METHODS) == len(out["forecasts"])
    assert (tmp_path / "a" / "extrapolation_ds_fam.png").stat().st_size > 0
    assert "| ds | fam | ee_law | ce | 2 |" in (tmp_path / "a" / "extrapolation.md").read_text()

    scaling_report(records).write(tmp_path / "rep")
    assert ex.main([str(tmp_path / "rep" / "scaling.json"), "--out", str(tmp_path / "b"), "--no-figures"]) == 0
    again = json.loads((tmp_path / "b" / "extrapolation.json").read_text())
    assert [r["forecast"] for r in again["forecasts"]] == pytest.approx([r["forecast"] for r in out["forecasts"]], rel=EXACT_LAW_FORECAST_REL)

    assert ex.main([str(res_dir), "--out", str(tmp_path / "c"), "--n", "total", "--no-figures"]) == 0
    total = json.loads((tmp_path / "c" / "extrapolation.json").read_text())
    assert {r["n"] for r in total["forecasts"]} == {r["n"] + 1000 for r in rows[-2:]}

    with pytest.raises(ValueError, match="the report's N is 'non_embedding', not 'total'"):
        ex.load_rows([tmp_path / "rep" / "scaling.json"], "total")
    with pytest.raises(FileNotFoundError, match="no such file"):
        ex.load_rows([tmp_path / "nope.json"])
    (tmp_path / "odd.json").write_text(json.dumps({"hello": 1}))
    with pytest.raises(ValueError, match="neither an eval result"):
        ex.load_rows([tmp_path / "odd.json"])
    assert ex.main([str(tmp_path / "nope.json"), "--out", str(tmp_path / "d")]) == 2
