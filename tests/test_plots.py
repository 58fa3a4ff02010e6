"""The figures render from results and reports, one file per dataset, written atomically."""

import numpy as np
from np_reference import fresh_rng

from rce_jax import plots
from rce_jax.report import scaling_report
from tolerances import DECADE_TICK_ABS, DECADE_TICK_REL

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


PDF = b"%PDF"


def _is_png(path):
    return path.exists() and path.read_bytes()[:8] == PNG


def _labelled_axes(monkeypatch):
    """Record, for every figure saved, whether each visible panel has x and y labels."""
    seen = []
    original = plots.save.__globals__["plt"].close

    def check(fig=None):
        if fig is not None and hasattr(fig, "axes"):
            for ax in fig.axes:
                if ax.axison and ax.get_label() != "<colorbar>":
                    seen.append((ax.get_title() or fig.get_suptitle(), bool(ax.get_xlabel()), bool(ax.get_ylabel())))
        return original(fig)

    monkeypatch.setattr(plots.save.__globals__["plt"], "close", check)
    return seen


def test_every_figure_renders_in_both_formats_with_labels_and_clean_names(tmp_path, monkeypatch):
    """Each figure kind is written as PNG and PDF; every visible panel has an x and a y label; a
    dataset given as a path is named by its file stem, never by the path."""
    rng = fresh_rng()
    results = _results(rng)
    for r in results:
        if r["dataset"] == "code/python":
            r["dataset"] = "../data/wiki_small.txt"
    seen = _labelled_axes(monkeypatch)
    report = scaling_report(results)
    paths = (plots.plot_scaling(report, tmp_path) + plots.plot_ee_share(report, tmp_path)
             + plots.plot_rank_histograms(results, tmp_path) + plots.plot_score_profiles(results, tmp_path))
    assert len(paths) == 8  # four kinds x two datasets
    assert {p.name for p in paths} >= {"scaling_prose.png", "scaling_wiki_small.png", "p_e_wiki_small.png"}
    rows = [{"step": s, "ce": 5 - s / 100, "ee": 3.0, "sa": 2.0, "conf": 0.1 * s,
             "rank_stats": {"ranks": [0, 1, 5], "count": [s + 1, 3, 2]}} for s in range(0, 300, 50)]
    paths.append(plots.plot_training_dynamics(rows, tmp_path / "dyn.png"))
    paths.append(plots.plot_p_evolution(rows, tmp_path / "p.png"))
    assert all(_is_png(p) for p in paths)
    assert all(p.with_suffix(".pdf").read_bytes()[:4] == PDF for p in paths)
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp") or "data" in p.name]
    assert seen and all(x and y for _, x, y in seen), [s for s in seen if not (s[1] and s[2])]


def test_log_axes_label_decades_and_narrow_ranges():
    """Over several decades the major ticks are the powers of ten, labelled 10^k; over less than a
    decade the axis gets several plain-number labels rather than one lone tick."""
    import numpy as np

    fig, axes = plots.figure(1, 2)
    wide, narrow = axes[0]
    wide.plot([1e4, 1e7], [1, 2])
    narrow.plot([1, 2], [2.4, 3.1])
    plots.log_axes(wide, y=False)
    plots.log_axes(narrow, x=False)
    fig.canvas.draw()
    majors = [t for t in wide.get_xticks() if 1e4 <= t <= 1e7]
    assert np.allclose(np.log10(majors), np.round(np.log10(majors)), rtol=DECADE_TICK_REL, atol=DECADE_TICK_ABS)
    labels = [t.get_text() for t in wide.get_xticklabels() if t.get_text()]
    assert any("10^{" in lab for lab in labels)
    shown = [t.get_text() for t in narrow.get_yticklabels() if t.get_text()]
    assert len(shown) >= 3, shown
    plots.plt.close(fig)
