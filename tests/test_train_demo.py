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


def test_findings_are_computed_from_the_numbers_and_follow_the_intervals(demo):
    """Each sentence of "What it found" states what the numbers say: the R^2 of each law, the slopes,
    the EE share at both ends; and a finding only where its interval excludes the opposite: "EE's
    law is tighter" only if the paired bootstrap interval of R^2(EE) - R^2(CE) (recomputed here
    from the replicates with np.polyfit) lies above zero and every leave-one-model-out fit agrees;
    "CE falls at every rung" only if every rung's paired interval lies below zero."""
    text = (demo / "report.md").read_text()
    found = text.split("## What it found")[1].split("## Recipe")[0]
    for ds, rs in load_results(demo).items():
        mine = found.split(f"On {ds}")[1].split("\n- On ")[0]
        n = [r["n_params_non_embedding"] for r in rs]
        fit = {k: np_fit(n, [r[k] for r in rs]) for k in ("ce", "ee", "sa", "conf")}
        for k in fit:
            assert f"{NAMES[k]} {fit[k][1]:.4f} (boot" in mine
        best = max(fit, key=lambda k: fit[k][1])
        assert f"the highest is {NAMES[best]}'s" in mine
        assert f"CE {fit['ce'][0]:+.4f} +- " in mine and f"EE {fit['ee'][0]:+.4f} +- " in mine
        share = [r["ee"] / r["ce"] for r in rs]
        assert f"{share[0]:.3f} for the smallest model, {share[-1]:.3f} for the largest" in mine
        lo, hi = _paired_r2_difference(rs)
        assert f"[{lo:+.4f}, {hi:+.4f}]" in mine
        loo = []
        for i in range(len(rs)):
            keep = [j for j in range(len(rs)) if j != i]
            sub = [rs[j] for j in keep]
            m = [r["n_params_non_embedding"] for r in sub]
            loo.append(np_fit(m, [r["ee"] for r in sub])[1] - np_fit(m, [r["ce"] for r in sub])[1])
        if lo > 0 and min(loo) > 0:
            assert "EE's law is tighter than CE's" in mine
        elif hi < 0 and max(loo) < 0:
            assert "CE's law is tighter than EE's" in mine
        else:
            assert "The data do not resolve whether EE's law is tighter than CE's" in mine
        ce_reps = np.array([r["intervals"]["replicates_values"]["ce"] for r in rs], float)
        ok = np.isfinite(ce_reps).all(axis=0)
        every_rung_falls = all(np.percentile(ce_reps[i + 1, ok] - ce_reps[i, ok], 97.5) < 0 for i in range(len(rs) - 1))
        assert ("CE falls at every rung" in mine) == every_rung_falls
        assert "One training run per rung (--seeds 1)" in mine


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
