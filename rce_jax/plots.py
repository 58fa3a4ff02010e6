"""Figures of the paper: scaling laws, EE share, p_e histograms, score profiles, training dynamics.

Every function writes PNG files atomically and returns their paths. Inputs are the plain
dictionaries of ``rce-jax eval`` results, a ``ScalingReport`` and training-metrics rows.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib import ticker  # noqa: E402

from .io import atomic_path  # noqa: E402
from .scaling import MIXED, ScalingReport  # noqa: E402

LABELS = {"ce": "CE", "ee": "Error-Entropy", "sa": "Self-Alignment", "conf": "Confidence",
          "ee_share": "EE / CE"}


def slug(text: str) -> str:
    """A file-name-safe form of a dataset or model name."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", str(text)).strip("_") or "unnamed"


def save(fig, path) -> Path:
    path = Path(path)
    try:
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format="png", dpi=120, bbox_inches="tight")
    finally:
        plt.close(fig)
    return path


def log_axes(ax, x=True, y=True):
    """Log axes with plain-text tick labels (mathtext labels on every minor tick of a narrow
    range made one figure take seconds to lay out). Call it after plotting: an axis whose data
    span less than a decade (CE of one family, say) has at most one major tick, so its minor
    ticks (2..9 x 10^k) are labelled too."""
    plain = ticker.FuncFormatter(lambda v, _: f"{v:.3g}")
    for on, axis, set_scale, get_lim in ((x, ax.xaxis, ax.set_xscale, ax.get_xlim),
                                         (y, ax.yaxis, ax.set_yscale, ax.get_ylim)):
        if on:
            set_scale("log")
            axis.set_major_formatter(plain)
            low, high = get_lim()
            narrow = 0 < low and high < 10 * low
            axis.set_minor_formatter(ticker.FuncFormatter(lambda v, _: f"{v:.4g}") if narrow
                                     else ticker.NullFormatter())


def _family_styles(families):
    cmap = plt.get_cmap("tab10")
    markers = "osD^v<>pX*"
    return {f: (cmap(i % 10), markers[i % len(markers)]) for i, f in enumerate(sorted(families))}


def plot_scaling(report: ScalingReport, out_dir, metrics=("ce", "ee", "sa", "conf", "ee_share")) -> list[Path]:
    """|metric| vs N on log-log axes, points per family with each family's fit, and the mixed fit."""
    paths = []
    fits = {(r["dataset"], r["family"], r["metric"]): r for r in report.rows}
    for dataset in sorted({m["dataset"] for m in report.models}):
        models = [m for m in report.models if m["dataset"] == dataset]
        styles = _family_styles({m["family"] for m in models})
        fig, axes = plt.subplots(1, len(metrics), figsize=(4.2 * len(metrics), 3.8), squeeze=False)
        for ax, metric in zip(axes[0], metrics):
            for fam, (color, marker) in styles.items():
                pts = [m for m in models if m["family"] == fam]
                n = np.array([m["n"] for m in pts], float)
                ax.scatter(n, [abs(m[metric]) for m in pts], color=color, marker=marker, label=fam, zorder=3)
                fit = fits.get((dataset, fam, metric))
                if fit:
                    grid = np.geomspace(n.min(), n.max(), 50)
                    ax.plot(grid, np.exp(fit["intercept"] + fit["slope"] * np.log(grid)), color=color,
                            lw=1.2, label=f"{fam}: a={fit['slope']:.3f}, R2={fit['r2']:.2f}")
            mixed = fits.get((dataset, MIXED, metric))
            if mixed:
                n_all = np.array([m["n"] for m in models], float)
                grid = np.geomspace(n_all.min(), n_all.max(), 50)
                ax.plot(grid, np.exp(mixed["intercept"] + mixed["slope"] * np.log(grid)), "k--", lw=1,
                        label=f"all: a={mixed['slope']:.3f}, R2={mixed['r2']:.2f}")
            log_axes(ax)
            ax.set_xlabel(f"N ({report.n_key.replace('_', '-')} parameters)")
            ax.set_title(LABELS[metric] + (" (abs)" if metric == "conf" else ""))
            ax.legend(fontsize=6)
            ax.grid(True, alpha=0.3)
        fig.suptitle(f"{dataset}: what scales in cross-entropy")
        paths.append(save(fig, Path(out_dir) / f"scaling_{slug(dataset)}.png"))
    return paths


def plot_ee_share(report: ScalingReport, out_dir) -> list[Path]:
    """EE / CE against N per family: the share of the loss that error-entropy explains."""
    paths = []
    for dataset in sorted({m["dataset"] for m in report.models}):
        models = [m for m in report.models if m["dataset"] == dataset]
        styles = _family_styles({m["family"] for m in models})
        fig, ax = plt.subplots(figsize=(5.5, 4))
        for fam, (color, marker) in styles.items():
            pts = sorted((m for m in models if m["family"] == fam), key=lambda m: m["n"])
            ax.plot([m["n"] for m in pts], [m["ee_share"] for m in pts], marker=marker, color=color, label=fam)
        log_axes(ax, y=False)
        ax.set_xlabel(f"N ({report.n_key.replace('_', '-')} parameters)")
        ax.set_ylabel("EE / CE")
        ax.set_title(f"{dataset}: error-entropy share of cross-entropy")
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=7)
        paths.append(save(fig, Path(out_dir) / f"ee_share_{slug(dataset)}.png"))
    return paths


def rank_distribution(result: dict) -> tuple[np.ndarray, np.ndarray]:
    """(ranks, p_e) of a result's sparse rank statistics."""
    rs = result["rank_stats"]
    count = np.asarray(rs["count"], float)
    return np.asarray(rs["ranks"]), count / count.sum()


def plot_rank_histograms(results: Sequence[dict], out_dir, *, stem="p_e") -> list[Path]:
    """p_e against e + 1 on log-log axes, one line per result, one figure per dataset."""
    paths = []
    for dataset in sorted({r["dataset"] for r in results}):
        chosen = sorted((r for r in results if r["dataset"] == dataset), key=lambda r: r["n_params"])
        fig, ax = plt.subplots(figsize=(5.5, 4))
        colors = plt.get_cmap("viridis")(np.linspace(0, 0.9, max(len(chosen), 1)))
        for color, r in zip(colors, chosen):
            ranks, p = rank_distribution(r)
            ax.plot(ranks + 1, p, ".", ms=2, color=color, label=f"{r['model']} (EE={r['ee']:.2f})")
        log_axes(ax)
        ax.set_xlabel("rank-based error e + 1")
        ax.set_ylabel("p_e")
        ax.set_title(f"{dataset}: RBE distribution")
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=6, markerscale=4)
        paths.append(save(fig, Path(out_dir) / f"{stem}_{slug(dataset)}.png"))
    return paths


def plot_score_profiles(results: Sequence[dict], out_dir) -> list[Path]:
    """Mean sorted probabilities of the top K entries for tokens whose target sits at rank k
    (one panel per k, one line per model); results without a profile are skipped."""
    with_profile = [r for r in results if r.get("profile")]
    paths = []
    for dataset in sorted({r["dataset"] for r in with_profile}):
        chosen = sorted((r for r in with_profile if r["dataset"] == dataset), key=lambda r: r["n_params"])
        ks = sorted({k for r in chosen for k in r["profile"]["ranks"]})
        fig, axes = plt.subplots(1, len(ks), figsize=(4.5 * len(ks), 3.8), squeeze=False)
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
                ax.plot(np.arange(1, probs.size + 1), probs, marker=".", color=color,
                        label=f"{r['model']} ({prof['count'][i]} tokens)")
            ax.axvline(k + 1, color="grey", ls=":", lw=1)
            log_axes(ax, x=False)
            ax.set_xlabel("position in the sorted scores")
            ax.set_ylabel("mean probability")
            ax.set_title(f"target at rank {k}")
            if ax.get_legend_handles_labels()[0]:
                ax.legend(fontsize=6)
            ax.grid(True, alpha=0.3)
        fig.suptitle(f"{dataset}: score profile at fixed rank")
        paths.append(save(fig, Path(out_dir) / f"score_profile_{slug(dataset)}.png"))
    return paths


def plot_training_dynamics(rows: Sequence[dict], path, *, title="training dynamics") -> Path:
    """CE, EE, SA and Conf of held-out evaluations against the training step."""
    rows = sorted(rows, key=lambda r: r["step"])
    steps = [r["step"] for r in rows]
    fig, axes = plt.subplots(1, 4, figsize=(16, 3.6))
    for ax, key in zip(axes, ("ce", "ee", "sa", "conf")):
        ax.plot(steps, [r[key] for r in rows], marker=".")
        ax.set_title(LABELS[key])
        ax.set_xlabel("step")
        ax.grid(True, alpha=0.3)
    fig.suptitle(title)
    return save(fig, path)


def plot_p_evolution(rows: Sequence[dict], path, *, max_curves=8, title="evolution of p_e") -> Path:
    """p_e against e + 1 at several training steps (early: light, late: dark)."""
    rows = sorted((r for r in rows if "rank_stats" in r), key=lambda r: r["step"])
    if len(rows) > max_curves:
        rows = [rows[i] for i in np.unique(np.linspace(0, len(rows) - 1, max_curves).round().astype(int))]
    fig, ax = plt.subplots(figsize=(5.5, 4))
    colors = plt.get_cmap("Blues")(np.linspace(0.3, 1.0, max(len(rows), 1)))
    for color, r in zip(colors, rows):
        ranks, p = rank_distribution(r)
        ax.plot(ranks + 1, p, ".-", ms=2, lw=0.6, color=color, label=f"step {r['step']}")
    log_axes(ax)
    ax.set_xlabel("rank-based error e + 1")
    ax.set_ylabel("p_e")
    ax.set_title(title)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=6)
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
