"""`rce-jax demo --quick`: a ladder trained with one recipe, evaluated, fitted, reported. The report's
numbers are checked against the result JSONs and against fits recomputed here with NumPy."""

import json
import re

import numpy as np
import pytest

from rce_jax import cli
from tolerances import F64_IDENTITY_ABS, FIT_TWO_ROUTES_WIDE_ABS

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
            row = (f"| {r['model']} | {r['n_params_non_embedding']:,} | {r['ce']:.4f} | {r['ee']:.4f} | "
                   f"{r['sa']:.4f} | {r['conf']:.4f} | {r['ee_share']:.4f} | {r['top1']:.4f} | "
                   f"{r['bits_per_byte']:.4f} |")
            assert row in text, row
        n = [r["n_params_non_embedding"] for r in rs]
        fits = {f["metric"]: f for f in report["fits"] if f["dataset"] == ds}
        for key, name in NAMES.items():
            vals = [r["ee"] / r["ce"] if key == "ee_share" else r[key] for r in rs]
            slope, r2 = np_fit(n, vals)
            assert fits[key]["slope"] == pytest.approx(slope, abs=FIT_TWO_ROUTES_WIDE_ABS)
            assert fits[key]["r2"] == pytest.approx(r2, abs=FIT_TWO_ROUTES_WIDE_ABS)
            assert f"| {ds} | {name} | 5 | {slope:+.4f} | {r2:.4f} |" in text


def test_findings_are_computed_from_the_numbers(demo):
    """Each sentence of "What it found" states what the numbers say: the best power law by R^2,
    the slopes, whether CE falls at every rung, the EE share at both ends, whether EE's R^2 beats
    CE's."""
    text = (demo / "report.md").read_text()
    found = text.split("## What it found")[1].split("## Recipe")[0]
    for ds, rs in load_results(demo).items():
        n = [r["n_params_non_embedding"] for r in rs]
        fit = {k: np_fit(n, [r[k] for r in rs]) for k in ("ce", "ee", "sa", "conf")}
        best = max(fit, key=lambda k: fit[k][1])
        assert f"On {ds}, {NAMES[best]} follows a power law in N most closely (R^2 = {fit[best][1]:.4f})" in found
        assert f"CE {fit['ce'][0]:+.4f}, EE {fit['ee'][0]:+.4f}, SA {fit['sa'][0]:+.4f}, Conf {fit['conf'][0]:+.4f}" in found
        ce = [r["ce"] for r in rs]
        falls = all(b < a for a, b in zip(ce, ce[1:]))
        assert ("CE falls at every rung" in found.split(f"On {ds}")[1].split("On ")[0]) == falls
        share = [r["ee"] / r["ce"] for r in rs]
        assert f"{share[0]:.3f} for the smallest model, {share[-1]:.3f} for the largest" in found
        verdict = "holds" if fit['ee'][1] > fit['ce'][1] else "does not hold"
        assert f"that {verdict} for {ds} (R^2 {fit['ee'][1]:.4f} vs {fit['ce'][1]:.4f})" in found


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
