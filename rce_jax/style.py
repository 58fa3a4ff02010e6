"""One figure style for every plot of rce-jax: sizes for a two-column paper, constrained layout,
log axes with 10^k major ticks and minor ticks, legends outside the data, names instead of
paths, and every figure written as PNG and as a vector PDF.

    fig, axes = figure(1, 3)           # constrained layout, the paper's fonts
    log_axes(ax)                       # after plotting
    legend_outside(fig, axes[-1])      # to the right of the panels
    save(fig, out / "scaling_wiki")    # scaling_wiki.png + scaling_wiki.pdf
"""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib import ticker  # noqa: E402

from .io import atomic_path, slug  # noqa: E402

FORMATS = ("png", "pdf")  # raster for the README and reports, vector for a paper
DPI = 200
PANEL = (3.3, 2.6)  # inches per panel: a column of a two-column paper
RC = {
    "font.size": 8, "axes.titlesize": 9, "axes.labelsize": 8, "xtick.labelsize": 7,
    "ytick.labelsize": 7, "legend.fontsize": 7, "legend.frameon": False, "lines.linewidth": 1.2,
    "lines.markersize": 4, "axes.grid": True, "grid.alpha": 0.25, "grid.linewidth": 0.5,
    "axes.spines.top": False, "axes.spines.right": False, "figure.dpi": 100, "savefig.dpi": DPI,
    "pdf.fonttype": 42,  # TrueType in the PDF: editable text
    "svg.fonttype": "none",
}
# Metric names and units for axis labels.
METRIC_LABELS = {"ce": "CE (nats/token)", "ee": "EE, error-entropy (nats)", "sa": "SA, self-alignment (nats)",
                 "conf": "|Conf|, confidence (nats)", "ee_share": "EE / CE (ratio)"}
METRIC_SHORT = {"ce": "CE", "ee": "EE", "sa": "SA", "conf": "|Conf|", "ee_share": "EE/CE"}
N_LABELS = {"non_embedding": "N, non-embedding parameters", "total": "N, total parameters"}


def display_name(name: str) -> str:
    """A short name for titles and file names: a local corpus path by its file or folder stem
    (``../data/wiki_small.txt`` -> ``wiki_small``), anything else as it is."""
    name = str(name)
    if name.startswith("tfds:") or ("/" not in name and "\\" not in name):
        return name
    base, _, split = name.rpartition("@") if "@" in Path(name).name else (name, "", "")
    stem = Path(base.rstrip("/\\")).name
    for suffix in (".jsonl", ".txt", ".json"):
        if stem.endswith(suffix):
            stem = stem[: -len(suffix)]
    return stem + (f"@{split}" if split else "")


def file_stem(kind: str, *names: str) -> str:
    """``kind_name1_name2`` of clean names, e.g. ``scaling_wiki_small``."""
    return "_".join([kind, *(slug(display_name(n)) for n in names)])


matplotlib.rcParams.update(RC)  # every figure drawn in this process takes the paper style


def figure(rows: int = 1, cols: int = 1, *, panel=PANEL, extra_width: float = 0.0, **kwargs):
    """A figure of ``rows x cols`` panels in the paper style, with constrained layout."""
    matplotlib.rcParams.update(RC)  # again, in case a caller changed them since the import
    fig, axes = plt.subplots(rows, cols, figsize=(panel[0] * cols + extra_width, panel[1] * rows),
                             layout="constrained", squeeze=False, **kwargs)
    return fig, axes


def log_axes(ax, x: bool = True, y: bool = True) -> None:
    """Log scale with major ticks at 10^k (labelled 10^k) and minor ticks at 2..9 x 10^k. Call it
    after plotting: when the data span less than a decade, so that fewer than two major ticks are
    visible, the minor ticks carry plain-number labels instead (no axis is left with a single
    ``1e+05``)."""
    for on, axis, set_scale, get_lim in ((x, ax.xaxis, ax.set_xscale, ax.get_xlim),
                                         (y, ax.yaxis, ax.set_yscale, ax.get_ylim)):
        if not on:
            continue
        set_scale("log")
        axis.set_major_locator(ticker.LogLocator(base=10, numticks=12))
        axis.set_major_formatter(ticker.LogFormatterSciNotation(base=10))
        axis.set_minor_locator(ticker.LogLocator(base=10, subs=tuple(range(2, 10)), numticks=12))
        low, high = get_lim()
        majors = math.floor(math.log10(high)) - math.ceil(math.log10(low)) + 1 if low > 0 else 2
        if majors < 2:  # less than a decade: evenly chosen plain-number ticks instead
            axis.set_major_locator(ticker.MaxNLocator(nbins=4, steps=[1, 2, 2.5, 5, 10]))
            axis.set_major_formatter(ticker.ScalarFormatter(useOffset=False))
        axis.set_minor_formatter(ticker.NullFormatter())


def legend_outside(fig, ax=None, *, handles=None, labels=None, title=None, loc="outside right center"):
    """One legend for the figure, outside the panels (to the right by default)."""
    if handles is None:
        source = [ax] if ax is not None else fig.axes
        handles, labels = [], []
        for a in source:
            h, lab = a.get_legend_handles_labels()
            for hh, ll in zip(h, lab):
                if ll not in labels:
                    handles.append(hh)
                    labels.append(ll)
    if handles:
        fig.legend(handles, labels, loc=loc, title=title, fontsize=RC["legend.fontsize"],
                   title_fontsize=RC["legend.fontsize"], frameon=False)


def save(fig, path) -> Path:
    """Write the figure as ``<stem>.png`` and ``<stem>.pdf`` (atomically) and close it; returns
    the PNG path (the PDF lies beside it)."""
    path = Path(path)
    name = path.name[: -len(path.suffix)] if path.suffix in (".png", ".pdf", ".svg") else path.name
    try:
        for fmt in FORMATS:
            with atomic_path(path.parent / f"{name}.{fmt}") as tmp:
                # "tight" takes in the legends placed outside the panels.
                fig.savefig(tmp, format=fmt, dpi=DPI, bbox_inches="tight", pad_inches=0.04)
    finally:
        plt.close(fig)
    return path.parent / f"{name}.png"
