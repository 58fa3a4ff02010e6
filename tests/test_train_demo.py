"""`rce-jax demo --quick`: a ladder trained with one recipe, evaluated, fitted, reported. The report's
numbers are checked against the result JSONs and against fits recomputed here with NumPy."""

import json
import re

import numpy as np
import pytest

from rce_jax import cli
from tolerances import F64_IDENTITY_ABS, FIT_TWO_ROUTES_REL, FIT_TWO_ROUTES_WIDE_ABS

NAMES = {"ce": "CE", "ee": "EE", "sa": "SA", "conf": "Conf", "ee_share": "EE/CE"}


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    folder = tmp_path_factory.mktemp("demo")
    mp = pytest.MonkeyPatch()
    mp.setenv("RCE_JAX_CACHE", str(folder / "cache"))  # tokenizer and token caches stay in tmp
    try:
        out = folder / "rce_demo_quick"
        assert cli.main(["demo", "--quick", "--out", str(out), "--no-progress"]) == 0
        yield out
    finally:
        mp.undo()


def load_results(out):
    recs = [json.loads(p.read_text()) for p in sorted((out / "results").glob("*.json"))]
    by_ds = {}
    for r in recs:
        by_ds.setdefault(r["dataset"], []).append(r)
    return {ds: sorted(rs, key=lambda r: r["n_params_non_embedding"]) for ds, rs in by_ds.items()}


def np_fit(n, m):
    x, y = np.log(np.asarray(n, float)), np.log(np.abs(np.asarray(m, float)))
    slope, intercept = np.polyfit(x, y, 1)
    r2 = 1 - np.sum((y - (intercept + slope * x)) ** 2) / np.sum((y - y.mean()) ** 2)
    return slope, r2


def test_results_are_standard_eval_results(demo):
    """Five models x two held-out corpora, each an `rce-jax eval` result whose decomposition adds up;
    the sizes span at least 1.5 decades of non-embedding parameters."""
    res = load_results(demo)
    assert sorted(res) == ["python-code@heldout", "python-docs@heldout"]
    for rs in res.values():
        assert [r["model"] for r in rs] == [f"quick-{i}" for i in range(1, 6)]
        for r in rs:
            assert r["schema"] == "rce-jax/eval-result" and r["family"] == "llama"
            assert r["ce"] == pytest.approx(r["ee"] + r["sa"] - r["conf"], abs=F64_IDENTITY_ABS)
        n = [r["n_params_non_embedding"] for r in rs]
        assert np.log10(n[-1] / n[0]) >= 1.5


def test_report_numbers_equal_results_and_fits(demo):
    """Every held-out table row of report.md prints the result JSON's numbers; every fit row and the
    fits in report.json equal a NumPy least-squares fit of log|M| on log N computed here."""
    text = (demo / "report.md").read_text()
    report = json.loads((demo / "report.json").read_text())
    for ds, rs in load_results(demo).items():
        for r in rs:
            iv = r["intervals"]
            cell = {k: f"{r[k]:.4f} [{iv[k]['lo']:.4f}, {iv[k]['hi']:.4f}]" for k in ("ce", "ee", "sa", "conf", "ee_share")}
            row = (f"| {r['model']} | {r['n_params_non_embedding']:,} | {cell['ce']} | {cell['ee']} | "
                   f"{cell['sa']} | {cell['conf']} | {cell['ee_share']} | {r['top1']:.4f} | "
                   f"{r['bits_per_byte']:.4f} |")
            assert row in text, row
        n = [r["n_params_non_embedding"] for r in rs]
        fits = {f["metric"]: f for f in report["fits"] if f["dataset"] == ds}
        for key, name in NAMES.items():
            vals = [r["ee"] / r["ce"] if key == "ee_share" else r[key] for r in rs]
            slope, r2 = np_fit(n, vals)
            assert fits[key]["slope"] == pytest.approx(slope, abs=FIT_TWO_ROUTES_WIDE_ABS)
            assert fits[key]["r2"] == pytest.approx(r2, abs=FIT_TWO_ROUTES_WIDE_ABS)
            assert f"| {ds} | {name} | 5 | {slope:+.4f} +- {fits[key]['slope_se']:.4f} |" in text


def _paired_r2_difference(rs, level=0.95):
    """Percentile interval of R^2(EE)_b - R^2(CE)_b over the results' bootstrap replicates (np.polyfit)."""
    n = [r["n_params_non_embedding"] for r in rs]
    reps = {k: np.array([r["intervals"]["replicates_values"][k] for r in rs], float) for k in ("ce", "ee")}
    # A replicate that drew weight 0 for every document has no value (None in the JSON): dropped.
    diff = [np_fit(n, reps["ee"][:, b])[1] - np_fit(n, reps["ce"][:, b])[1] for b in range(reps["ce"].shape[1])
            if np.isfinite(reps["ce"][:, b]).all()]
    return np.percentile(diff, [50 * (1 - level), 100 - 50 * (1 - level)])


def _np_ols_interval(n, m, level=0.95):
    """The t-interval of the least-squares slope of log|m| on log n (scipy's t quantile)."""
    from scipy import stats

    x, y = np.log(np.asarray(n, float)), np.log(np.abs(np.asarray(m, float)))
    slope, intercept = np.polyfit(x, y, 1)
    resid = y - (intercept + slope * x)
    se = np.sqrt(np.sum(resid ** 2) / (len(x) - 2) / np.sum((x - x.mean()) ** 2))
    half = stats.t.ppf(0.5 + level / 2, len(x) - 2) * se
    return slope - half, slope + half


def test_findings_data_equal_an_independent_numpy_computation(demo):
    """The findings of report.json, as data, equal what NumPy computes here from the result JSONs:
    each law's R^2 and slope (np.polyfit) and the best law; R^2(EE) - R^2(CE) with its paired
    bootstrap interval (percentiles over the replicates) and leave-one-model-out range, and the
    verdict that follows (+1 only when both lie above zero, -1 only when both lie below, else 0);
    every rung's CE change with its paired interval and verdict, and "CE falls at every rung" only
    if all of them fall; EE's share at both ends and its slope, the verdict following the OLS
    t-interval (recomputed with scipy) and the bootstrap interval; SA and Conf at both ends."""
    report = json.loads((demo / "report.json").read_text())
    by_ds = {f["dataset"]: {g["kind"]: g for g in f["findings"]} for f in report["findings"]}
    for ds, rs in load_results(demo).items():
        found = by_ds[ds]
        n = [r["n_params_non_embedding"] for r in rs]
        fit = {k: np_fit(n, [r[k] for r in rs]) for k in ("ce", "ee", "sa", "conf")}
        for k, (slope, r2) in fit.items():
            assert found["r2"]["values"]["laws"][k]["r2"] == pytest.approx(r2, abs=FIT_TWO_ROUTES_WIDE_ABS)
            assert found["slopes"]["values"]["laws"][k]["slope"] == pytest.approx(slope, abs=FIT_TWO_ROUTES_WIDE_ABS)
        assert found["r2"]["values"]["best"] == max(fit, key=lambda k: fit[k][1])
        assert found["slopes"]["values"]["abs_delta_ee_ce"] == pytest.approx(
            abs(fit["ee"][0] - fit["ce"][0]), abs=FIT_TWO_ROUTES_WIDE_ABS)

        tighter = found["ee_tighter"]
        lo, hi = _paired_r2_difference(rs)
        loo = []
        for i in range(len(rs)):
            sub = [r for j, r in enumerate(rs) if j != i]
            m = [r["n_params_non_embedding"] for r in sub]
            loo.append(np_fit(m, [r["ee"] for r in sub])[1] - np_fit(m, [r["ce"] for r in sub])[1])
        x = tighter["values"]
        assert x["estimate"] == pytest.approx(fit["ee"][1] - fit["ce"][1], abs=FIT_TWO_ROUTES_WIDE_ABS)
        assert x["boot"] == pytest.approx([lo, hi], abs=FIT_TWO_ROUTES_WIDE_ABS)
        assert x["loo"] == pytest.approx([min(loo), max(loo)], abs=FIT_TWO_ROUTES_WIDE_ABS)
        assert tighter["verdict"] == (1 if lo > 0 and min(loo) > 0 else -1 if hi < 0 and max(loo) < 0 else 0)

        ce_reps = np.array([r["intervals"]["replicates_values"]["ce"] for r in rs], float)
        ok = np.isfinite(ce_reps).all(axis=0)
        rungs = found["ce_rungs"]["values"]["rungs"]
        assert len(rungs) == len(rs) - 1
        for i, rung in enumerate(rungs):
            d_lo, d_hi = np.percentile(ce_reps[i + 1, ok] - ce_reps[i, ok], [2.5, 97.5])
            assert (rung["from"], rung["to"]) == (n[i], n[i + 1])
            assert rung["change"] == pytest.approx(rs[i + 1]["ce"] - rs[i]["ce"], abs=F64_IDENTITY_ABS)
            assert [rung["lo"], rung["hi"]] == pytest.approx([d_lo, d_hi], abs=FIT_TWO_ROUTES_WIDE_ABS)
            assert rung["verdict"] == (-1 if d_hi < 0 else 1 if d_lo > 0 else 0)
        assert (found["ce_rungs"]["verdict"] == -1) == all(r["verdict"] == -1 for r in rungs)

        trend = found["ee_share_trend"]
        share = [r["ee"] / r["ce"] for r in rs]
        s_lo, s_hi = _np_ols_interval(n, share)
        b_lo, b_hi = trend["values"]["boot"]
        assert trend["values"]["first"] == pytest.approx(share[0], abs=F64_IDENTITY_ABS)
        assert trend["values"]["last"] == pytest.approx(share[-1], abs=F64_IDENTITY_ABS)
        assert trend["values"]["slope"] == pytest.approx(np_fit(n, share)[0], abs=FIT_TWO_ROUTES_WIDE_ABS)
        assert trend["values"]["ols"] == pytest.approx([s_lo, s_hi], abs=FIT_TWO_ROUTES_WIDE_ABS)
        assert trend["verdict"] == (-1 if s_hi < 0 and b_hi < 0 else 1 if s_lo > 0 and b_lo > 0 else 0)
        assert found["sa_conf"]["values"] == {"sa": [rs[0]["sa"], rs[-1]["sa"]],
                                              "conf": [rs[0]["conf"], rs[-1]["conf"]]}
        assert found["seeds"]["values"] == {"seeds": 1, "spread": None}


def test_report_lists_the_rendered_findings(demo):
    """"What it found" in report.md is, line by line, ``report.render`` of the Finding records
    that report.json holds (the words come from the data and nowhere else)."""
    from rce_jax.train.report import Finding, render

    text = (demo / "report.md").read_text()
    found = text.split("## What it found\n\n")[1].split("\n\n## Recipe")[0].splitlines()
    report = json.loads((demo / "report.json").read_text())
    rendered = [render(Finding(**g)) for f in report["findings"] for g in f["findings"]]
    assert found == [f"- {s}" for s in rendered]
    assert [s for f in report["findings"] for s in f["sentences"]] == rendered


def test_render_words_each_verdict():
    """``render`` states a finding only as its verdict says: the same numbers read "tighter, as
    the paper reports" (+1), "unlike the paper" (-1) or "do not resolve ... (why)" (0); a rung
    that rises or is open is named as such; seed agreement appears only with several seeds."""
    from rce_jax.train.report import Finding, render

    nums = {"compared": True, "estimate": 0.0123, "boot": [0.0011, 0.0234], "loo": [0.0005, 0.03],
            "seeds": 1, "agree": 1}
    tail = ("R^2(EE) - R^2(CE) = +0.0123, 95% paired bootstrap [+0.0011, +0.0234], "
            "leave-one-model-out [+0.0005, +0.0300]")
    assert render(Finding("ee_tighter", "code", 1, {**nums, "unresolved_because": None})) == (
        f"EE's law is tighter than CE's on code, as the paper reports: {tail}.")
    assert render(Finding("ee_tighter", "code", -1, {**nums, "unresolved_because": None})) == (
        f"CE's law is tighter than EE's on code, unlike the paper: {tail}.")
    assert render(Finding("ee_tighter", "code", 0, {**nums, "seeds": 3, "agree": 2,
                                                    "unresolved_because": "the seeds disagree"})) == (
        "The data do not resolve whether EE's law is tighter than CE's on code (the seeds disagree): "
        f"{tail}; resolved the same way in 2 of 3 seeds.")
    rungs = [{"from": 100, "to": 2000, "change": -0.5, "lo": -0.6, "hi": -0.4, "verdict": -1},
             {"from": 2000, "to": 30000, "change": 0.01, "lo": -0.02, "hi": 0.04, "verdict": 0},
             {"from": 30000, "to": 400000, "change": 0.2, "lo": 0.1, "hi": 0.3, "verdict": 1}]
    x = {"seeds": 1, "first": {"n": 100, "ce": 5.0}, "last": {"n": 400000, "ce": 4.71}, "rungs": rungs}
    assert render(Finding("ce_rungs", "code", 0, x)) == (
        "CE does not fall at every rung with resolved intervals: CE rises (resolved) at "
        "N = 30,000 -> 400,000; the data do not resolve whether CE falls at N = 2,000 -> 30,000. "
        "Changes with paired 95% intervals: N = 100 -> 2,000: -0.5000 [-0.6000, -0.4000]; "
        "N = 2,000 -> 30,000: +0.0100 [-0.0200, +0.0400]; N = 30,000 -> 400,000: +0.2000 [+0.1000, +0.3000].")
    assert render(Finding("ce_rungs", "code", -1, {**x, "rungs": rungs[:1]})).startswith(
        "CE falls at every rung of the ladder, from 5.0000 (N = 100) to 4.7100 (N = 400,000); every "
        "paired 95% interval of the change lies below zero: N = 100 -> 2,000")
    with pytest.raises(ValueError, match="unknown finding kind 'nope'"):
        render(Finding("nope", "code", None, {}))


def test_figures_recipe_and_ladder_table(demo):
    """The report links PNG figures that exist (scaling, EE share, p_e histograms, training dynamics
    and p_e evolution of the largest model); the ladder table lists the measured sizes; the recipe
    is the same for every model."""
    text = (demo / "report.md").read_text()
    links = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", text)
    kinds = {re.sub(r"_python-.*", "", link.split("/")[-1]) for link in links}
    assert kinds == {"scaling", "ee_share", "p_e", "training_dynamics", "p_evolution"}
    for link in links:
        assert (demo / link).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert (demo / link).with_suffix(".pdf").read_bytes()[:4] == b"%PDF"
    for r in load_results(demo)["python-docs@heldout"]:
        summary = json.loads((demo / "runs" / r["model"] / "summary.json").read_text())
        assert summary["n_params_non_embedding"] == r["n_params_non_embedding"]
        assert f"| {r['model']} | {summary['hidden_size']} | {summary['num_layers']} |" in text
    configs = [json.loads((demo / "runs" / f"quick-{i}" / "config.json").read_text()) for i in range(1, 6)]
    for c in configs:
        c.pop("model"), c.pop("eval")
    assert all(c == configs[0] for c in configs)


def test_rerun_skips_and_scaling_command_refits(demo, tmp_path, capsys, monkeypatch):
    """Rerunning the demo trains and evaluates nothing again; `rce-jax scaling` on its results
    reproduces its fits."""
    monkeypatch.setenv("RCE_JAX_CACHE", str(demo.parent / "cache"))
    before = json.loads((demo / "report.json").read_text())
    capsys.readouterr()
    assert cli.main(["demo", "--quick", "--out", str(demo), "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert out.count("trained before; skipping") == 5 and out.count("exists; skipping") == 10
    after = json.loads((demo / "report.json").read_text())
    assert after["fits"] == before["fits"] and after["findings"] == before["findings"]
    assert cli.main(["scaling", str(demo / "results"), "--out", str(tmp_path), "--no-figures"]) == 0
    refit = json.loads((tmp_path / "scaling.json").read_text())
    assert refit["fits"] == before["fits"]


def test_seeds_train_each_rung_again_and_report_the_spread(demo, monkeypatch):
    """`demo --quick --seeds 2` on the same folder keeps seed 0 (nothing retrained), trains each
    rung once more with seed 1 (its own runs and results), leaves the seed-0 fits unchanged and
    reports the seed-to-seed spread: sd of alpha over the two seeds' fits, recomputed with NumPy."""
    monkeypatch.setenv("RCE_JAX_CACHE", str(demo.parent / "cache"))
    before = json.loads((demo / "report.json").read_text())
    assert cli.main(["demo", "--quick", "--seeds", "2", "--out", str(demo), "--no-progress"]) == 0
    after = json.loads((demo / "report.json").read_text())
    assert after["seeds"] == 2 and after["fits"] == before["fits"]
    for i in range(1, 6):
        config = json.loads((demo / "runs" / "seed1" / f"quick-{i}" / "config.json").read_text())
        assert config["seed"] == 1
    seed1 = [json.loads(p.read_text()) for p in sorted((demo / "results_seeds" / "seed1").glob("*.json"))]
    assert len(seed1) == 10
    for f in after["findings"]:
        rs0 = sorted((r for r in after["results"] if r["dataset"] == f["dataset"]), key=lambda r: r["n_params_non_embedding"])
        rs1 = sorted((r for r in seed1 if r["dataset"] == f["dataset"]), key=lambda r: r["n_params_non_embedding"])
        slopes = [np_fit([r["n_params_non_embedding"] for r in rs], [r["ce"] for r in rs])[0] for rs in (rs0, rs1)]
        assert f["seed_spread"]["ce"]["slope_sd"] == pytest.approx(np.std(slopes, ddof=1), rel=FIT_TWO_ROUTES_REL)
        assert any("Across 2 seeds" in s for s in f["sentences"])
    assert "Seed-to-seed spread over 2 seeds" in (demo / "report.md").read_text()
