"""The figures render from results and reports, one file per dataset, written atomically."""

import numpy as np
from np_reference import fresh_rng

from rce_jax import plots
from rce_jax.scaling import scaling_report

PNG = b"\x89PNG\r\n\x1a\n"


def _results(rng):
    out = []
    for ds in ("prose", "code/python"):
        for fam, sizes in (("a", [1e5, 1e6, 1e7]), ("b", [3e5, 3e6])):
            for n in sizes:
                ranks = np.arange(0, 200, 3)
                count = rng.integers(1, 50, ranks.size)
                ee = 3 * n**-0.05
                out.append({"model": f"{fam}{int(n)}", "family": fam, "dataset": ds, "n_params": int(n * 2),
                            "n_params_non_embedding": int(n), "ce": ee + 1.5, "ee": ee, "sa": 1.7, "conf": 0.2,
                            "rank_stats": {"ranks": ranks.tolist(), "count": count.tolist()},
                            "profile": {"ranks": [2, 4], "count": [10, 0],
                                        "mean_sorted_probs": [sorted(rng.random(8), reverse=True), [0.0] * 8]}})
    return out


def _is_png(path):
    return path.exists() and path.read_bytes()[:8] == PNG


def test_every_figure_renders(tmp_path):
    rng = fresh_rng()
    results = _results(rng)
    report = scaling_report(results)
    paths = (plots.plot_scaling(report, tmp_path) + plots.plot_ee_share(report, tmp_path)
             + plots.plot_rank_histograms(results, tmp_path) + plots.plot_score_profiles(results, tmp_path))
    assert len(paths) == 8  # four kinds x two datasets
    assert {p.name for p in paths} >= {"scaling_prose.png", "scaling_code_python.png"}
    rows = [{"step": s, "ce": 5 - s / 100, "ee": 3.0, "sa": 2.0, "conf": 0.1 * s,
             "rank_stats": {"ranks": [0, 1, 5], "count": [s + 1, 3, 2]}} for s in range(0, 300, 50)]
    paths.append(plots.plot_training_dynamics(rows, tmp_path / "dyn.png"))
    paths.append(plots.plot_p_evolution(rows, tmp_path / "p.png"))
    assert all(_is_png(p) for p in paths)
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]
