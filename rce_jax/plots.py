"""Figures of the paper: scaling laws, EE share, p_e histograms, score profiles, training dynamics.

Every function writes each figure as PNG and PDF (``rce_jax.style.save``) and returns the PNG
paths. Inputs are the plain dictionaries of ``rce-jax eval`` results, a ``ScalingReport`` and
training-metrics rows. The look (sizes, fonts, log ticks, legends outside the data) is
``rce_jax.style``'s; file names and titles use names, never paths.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from matplotlib import ticker

from .fits import fit_power_law
from .report import MIXED, ScalingReport
from .style import (METRIC_LABELS, METRIC_SHORT, N_LABELS, display_name, figure, file_stem,  # noqa: F401
                    legend_outside, log_axes, plt, save)

LABELS = METRIC_SHORT


def _families_by_size(models) -> list[str]:
    """Families ordered by their smallest model (then by name)."""
    smallest = {}
    for m in models:
        smallest[m["family"]] = min(smallest.get(m["family"], math.inf), m["n"])
    return sorted(smallest, key=lambda f: (smallest[f], f))


def _family_styles(families):
    cmap = plt.get_cmap("tab10")
    markers = "osD^v<>pX*"
    return {f: (cmap(i % 10), markers[i % len(markers)]) for i, f in enumerate(families)}


def _law_label(name: str, fit_row: dict) -> str:
    """``name: |M| ~ N^(alpha +- half-width), R^2 = r`` (the OLS interval of alpha)."""
    half = fit_row["slope_hi"] - fit_row["slope"] if math.isfinite(fit_row.get("slope_hi", math.nan)) else math.nan
    pct = f"{fit_row.get('level', 0.95):.0%}"
    if math.isfinite(half):
        digits = max(3, 1 - math.floor(math.log10(half))) if half > 0 else 3  # two significant digits of it
        exponent = rf"$N^{{{fit_row['slope']:+.{digits}f} \pm {half:.{digits}f}}}$ ({pct})"
    else:
        exponent = rf"$N^{{{fit_row['slope']:+.3f}}}$ ({fit_row['n_points']} models: no interval)"
    return rf"{name}: $\propto$ {exponent}, $R^2$ = {fit_row['r2']:.3f}"


def _yerr(models, metric, absolute=False):
    """Asymmetric error bars from the models' bootstrap intervals (None when missing)."""
    lo, hi = [], []
    for m in models:
        iv = (m.get("intervals") or {}).get(metric)
        if iv is None:
            return None
        v = abs(m[metric]) if absolute else m[metric]
        a, b = (abs(iv[0]), abs(iv[1])) if absolute else iv
        a, b = min(a, b), max(a, b)
        lo.append(max(v - a, 0.0))
        hi.append(max(b - v, 0.0))
    return np.array([lo, hi])


def _draw_law(ax, n, values, fit_row, color, ls, label):
    """The fitted line and its confidence band over the models' range."""
    fit = fit_power_law(n, values, fit_row.get("level", 0.95))
    grid = np.geomspace(np.min(n), np.max(n), 60)
    band_lo, band_hi = fit.band(grid)
    if np.isfinite(band_lo).all():
        ax.fill_between(grid, band_lo, band_hi, color=color, alpha=0.15, lw=0)
    ax.plot(grid, fit.predict(grid), color=color, ls=ls, lw=1.1, label=label)


def plot_scaling(report: ScalingReport, out_dir, metrics=("ce", "ee", "sa", "conf", "ee_share")) -> list[Path]:
    """|metric| against N on log-log axes: each family's models (with their bootstrap intervals),
    its fitted law with the law's confidence band, and the mixed fit; one panel per metric (three
    per row), each with its laws' equations below it, the families' legend in the last slot."""
    paths = []
    fits = {(r["dataset"], r["family"], r["metric"]): r for r in report.rows}
    cols = min(3, len(metrics))
    rows = -(-(len(metrics) + 1) // cols) if len(metrics) > 1 else 1
    for dataset in sorted({m["dataset"] for m in report.models}):
        models = [m for m in report.models if m["dataset"] == dataset]
        styles = _family_styles(_families_by_size(models))
        fig, axes = figure(rows, cols, panel=(2.6, 2.9))
        family_handles = {}
        for ax, metric in zip(axes.flat, metrics):
            for fam, (color, marker) in styles.items():
                pts = sorted((m for m in models if m["family"] == fam), key=lambda m: m["n"])
                n = np.array([m["n"] for m in pts], float)
                y = np.array([abs(m[metric]) for m in pts])
                h = ax.errorbar(n, y, yerr=_yerr(pts, metric, absolute=True), fmt=marker, color=color, ms=3.5,
                                elinewidth=0.8, capsize=1.5, zorder=3)
                family_handles.setdefault(fam, (h, f"{fam} ({len(pts)} models)"))
                fit = fits.get((dataset, fam, metric))
                if fit:
                    _draw_law(ax, n, y, fit, color, "-", _law_label(fam, fit))
            mixed = fits.get((dataset, MIXED, metric))
            if mixed:
                n_all = np.array([m["n"] for m in models], float)
                _draw_law(ax, n_all, [abs(m[metric]) for m in models], mixed, "k", "--", _law_label("all", mixed))
            log_axes(ax)
            ax.set_xlabel(N_LABELS.get(report.n_key, "N, parameters"))
            ax.set_ylabel(METRIC_LABELS[metric])
            ax.set_title(METRIC_SHORT[metric])
            ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.24), fontsize=6, frameon=False,
                      handlelength=1.5)
        spare = list(axes.flat)[len(metrics):]
        for ax in spare:
            ax.set_axis_off()
        handles = [h for h, _ in family_handles.values()]
        labels = [lab for _, lab in family_handles.values()]
        note = ("points: models, bars: bootstrap intervals over documents\n"
                "lines: fitted laws; shaded: their confidence band\n"
                "(alpha interval: OLS, from the models' scatter)")
        if spare:
            spare[0].legend(handles, labels, loc="upper left", title="family (by size)", frameon=False)
            spare[0].text(0.0, 0.25, note, transform=spare[0].transAxes, fontsize=6, va="top")
        else:
            legend_outside(fig, handles=handles, labels=labels, title="family (by size)")
        fig.suptitle(f"{display_name(dataset)}: what scales in cross-entropy ({len(models)} models)", fontsize=9)
        paths.append(save(fig, Path(out_dir) / file_stem("scaling", dataset)))
    return paths


def plot_ee_share(report: ScalingReport, out_dir) -> list[Path]:
    """EE / CE against N per family (bootstrap intervals as error bars) with its fitted law."""
    paths = []
    fits = {(r["dataset"], r["family"], r["metric"]): r for r in report.rows}
    for dataset in sorted({m["dataset"] for m in report.models}):
        models = [m for m in report.models if m["dataset"] == dataset]
        styles = _family_styles(_families_by_size(models))
        fig, axes = figure(1, 1, panel=(3.6, 2.8))
        ax = axes[0, 0]
        for fam, (color, marker) in styles.items():
            pts = sorted((m for m in models if m["family"] == fam), key=lambda m: m["n"])
            n = np.array([m["n"] for m in pts], float)
            y = np.array([m["ee_share"] for m in pts])
            ax.errorbar(n, y, yerr=_yerr(pts, "ee_share"), fmt=marker, color=color, ms=3.5, elinewidth=0.8,
                        capsize=1.5, zorder=3, label=f"{fam} ({len(pts)} models)")
            fit = fits.get((dataset, fam, "ee_share"))
            if fit:
                _draw_law(ax, n, y, fit, color, "-", _law_label(f"{fam} fit", fit))
        log_axes(ax, y=False)
        ax.set_xlabel(N_LABELS.get(report.n_key, "N, parameters"))
        ax.set_ylabel(METRIC_LABELS["ee_share"])
        ax.set_title(f"{display_name(dataset)}: error-entropy share of CE")
        legend_outside(fig, ax, loc="outside lower center")
        paths.append(save(fig, Path(out_dir) / file_stem("ee_share", dataset)))
    return paths


def rank_distribution(result: dict) -> tuple[np.ndarray, np.ndarray]:
    """(ranks, p_e) of a result's sparse rank statistics."""
    rs = result["rank_stats"]
    count = np.asarray(rs["count"], float)
    return np.asarray(rs["ranks"]), count / count.sum()


def _size(r: dict) -> int:
    return int(r.get("n_params_non_embedding", r.get("n_params", 0)))


def plot_rank_histograms(results: Sequence[dict], out_dir, *, stem="p_e") -> list[Path]:
    """p_e against e + 1 on log-log axes, one series per model (legend ordered by size)."""
    paths = []
    for dataset in sorted({r["dataset"] for r in results}):
        chosen = sorted((r for r in results if r["dataset"] == dataset), key=_size)
        fig, axes = figure(1, 1, panel=(3.4, 2.8), extra_width=2.4)
        ax = axes[0, 0]
        colors = plt.get_cmap("viridis")(np.linspace(0, 0.9, max(len(chosen), 1)))
        for color, r in zip(colors, chosen):
            ranks, p = rank_distribution(r)
            ax.plot(ranks + 1, p, ".", ms=1.5, color=color,
                    label=f"{r['model']} (N = {_size(r):.2g}, EE = {r['ee']:.2f})")
        log_axes(ax)
        ax.set_xlabel("rank-based error e + 1 (1 = target ranked first)")
        ax.set_ylabel(r"$p_e$ (share of scored tokens)")
        fig.suptitle(f"{display_name(dataset)}: distribution of the rank-based error", fontsize=9)
        legend_outside(fig, ax, title="model (by size; EE in nats)")
        for h in fig.legends[0].legend_handles if fig.legends else ():
            h.set_markersize(5)
        paths.append(save(fig, Path(out_dir) / file_stem(stem, dataset)))
    return paths


def plot_score_profiles(results: Sequence[dict], out_dir) -> list[Path]:
    """Mean sorted probabilities of the top K entries for tokens whose target sits at rank k
    (one panel per k, one line per model by size); results without a profile are skipped."""
    with_profile = [r for r in results if r.get("profile")]
    paths = []
    for dataset in sorted({r["dataset"] for r in with_profile}):
        chosen = sorted((r for r in with_profile if r["dataset"] == dataset), key=_size)
        ks = sorted({k for r in chosen for k in r["profile"]["ranks"]})
        fig, axes = figure(1, len(ks), panel=(3.0, 2.6), extra_width=1.6)
        colors = plt.get_cmap("viridis")(np.linspace(0, 0.9, len(chosen)))
        for ax, k in zip(axes[0], ks):
            for color, r in zip(colors, chosen):
                prof = r["profile"]
                if k not in prof["ranks"]:
                    continue
                i = prof["ranks"].index(k)
                if prof["count"][i] == 0:
                    continue
                probs = np.asarray(prof["mean_sorted_probs"][i])
                ax.plot(np.arange(1, probs.size + 1), probs, marker=".", color=color, label=f"{r['model']} "
                        f"(N = {_size(r):.2g})")
            ax.axvline(k + 1, color="grey", ls=":", lw=1)
            ax.xaxis.set_major_locator(ticker.MaxNLocator(integer=True))
            log_axes(ax, x=False)
            ax.set_xlabel("position in the sorted scores (1 = highest)")
            ax.set_ylabel("mean probability")
            ax.set_title(f"target at rank e = {k} (dotted)")
        legend_outside(fig, title="model (by size)")
        fig.suptitle(f"{display_name(dataset)}: score profile at fixed rank", fontsize=9)
        paths.append(save(fig, Path(out_dir) / file_stem("score_profile", dataset)))
    return paths


def plot_training_dynamics(rows: Sequence[dict], path, *, title="training dynamics") -> Path:
    """CE, EE, SA and Conf of held-out evaluations against the training step (2 x 2 panels)."""
    rows = sorted(rows, key=lambda r: r["step"])
    steps = [r["step"] for r in rows]
    fig, axes = figure(2, 2, panel=(2.9, 2.1))
    for ax, key in zip(axes.flat, ("ce", "ee", "sa", "conf")):
        ax.plot(steps, [r[key] for r in rows], marker=".", ms=3)
        ax.set_title(METRIC_SHORT[key] if key != "conf" else "Conf")
        ax.set_xlabel("training step")
        ax.set_ylabel(METRIC_LABELS[key] if key != "conf" else "confidence Conf (nats)")
    fig.suptitle(display_name(title), fontsize=9)
    return save(fig, path)


def plot_p_evolution(rows: Sequence[dict], path, *, max_curves=8, title="evolution of $p_e$") -> Path:
    """p_e against e + 1 at several training steps (colour: the step, on a colour bar)."""
    rows = sorted((r for r in rows if "rank_stats" in r), key=lambda r: r["step"])
    if len(rows) > max_curves:
        rows = [rows[i] for i in np.unique(np.linspace(0, len(rows) - 1, max_curves).round().astype(int))]
    fig, axes = figure(1, 1, panel=(3.6, 2.8))
    ax = axes[0, 0]
    steps = [r["step"] for r in rows] or [0]
    norm = plt.Normalize(min(steps), max(max(steps), min(steps) + 1))
    cmap = plt.get_cmap("viridis")
    for r in rows:
        ranks, p = rank_distribution(r)
        ax.plot(ranks + 1, p, ".", ms=1.5, color=cmap(norm(r["step"])))
    log_axes(ax)
    ax.set_xlabel("rank-based error e + 1 (1 = target ranked first)")
    ax.set_ylabel(r"$p_e$ (share of scored tokens)")
    ax.set_title(display_name(title))
    fig.colorbar(plt.cm.ScalarMappable(norm=norm, cmap=cmap), ax=ax, label="training step")
    return save(fig, path)


def write_figures(report, records, out_dir, histogram_models: str = "") -> list[Path]:
    """Every figure of the paper that these results support (``rce-jax scaling``, the demo and
    the experiments): metric vs N with fits, EE share, p_e histograms, score profiles."""
    # Each record under its corpus group's label, as in the tables (one figure per group).
    records = [{**r, "dataset": report.label_of(r)} for r in records] if report.labels else list(records)
    chosen = {m.strip() for m in histogram_models.split(",") if m.strip()}
    unknown = chosen - {r["model"] for r in records}
    if unknown:
        raise ValueError(f"--histogram-models names models not in the results: {sorted(unknown)}")
    with_ranks = [r for r in records if "rank_stats" in r and (not chosen or r["model"] in chosen)]
    fitted = list(dict.fromkeys(r["metric"] for r in report.rows))  # in report order
    paths = plot_scaling(report, out_dir, metrics=fitted) if report.rows else []
    paths += plot_ee_share(report, out_dir)
    paths += plot_rank_histograms(with_ranks, out_dir)
    paths += plot_score_profiles(records, out_dir)
    return paths
