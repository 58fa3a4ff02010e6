"""Scaling-law fits of the decomposition against model size (docs/design.md#3-scaling-fits).

For a group of models with sizes ``N_m`` and a metric ``M``: ``log|M| = c + alpha log N`` by
least squares, with ``R^2`` in log space and ``|Delta_M| = |alpha_M - alpha_CE|``. Groups are
each (dataset, family) pair and each dataset with all families mixed. CE is also fitted with
an irreducible term, ``CE = A N^-alpha + E``.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import math
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import numpy as np
from scipy.optimize import least_squares

from .io import write_json, write_text

METRICS = ("ce", "ee", "sa", "conf", "ee_share")
N_KEYS = {
    "non_embedding": "n_params_non_embedding",
    "total": "n_params",
}
N_DESCRIPTIONS = {
    "non_embedding": "non-embedding parameters (token and position embeddings and an untied "
    "LM head excluded, as in Kaplan et al.)",
    "total": "total parameters",
}
MIXED = "all"


@dataclasses.dataclass(frozen=True)
class PowerLawFit:
    """``log|M| = intercept + slope * log N`` over ``n_points`` models."""

    slope: float
    intercept: float
    r2: float
    n_points: int

    def predict(self, n) -> np.ndarray:
        """|M| at size(s) ``n``."""
        return np.exp(self.intercept + self.slope * np.log(np.asarray(n, np.float64)))


@dataclasses.dataclass(frozen=True)
class IrreducibleFit:
    """``CE = A * N^-alpha + E`` by nonlinear least squares; ``r2`` on CE itself."""

    A: float
    alpha: float
    E: float
    r2: float
    n_points: int

    def predict(self, n) -> np.ndarray:
        return self.A * np.asarray(n, np.float64) ** (-self.alpha) + self.E


def _log_inputs(n, m):
    n = np.asarray(n, np.float64)
    m = np.asarray(m, np.float64)
    if n.shape != m.shape or n.ndim != 1:
        raise ValueError(f"sizes and metric values must be 1-D of equal length; got {n.shape}, {m.shape}")
    if n.size < 2:
        raise ValueError(f"a power-law fit needs at least 2 models; got {n.size}")
    if not (np.isfinite(n).all() and (n > 0).all()):
        raise ValueError("model sizes must be finite and positive")
    if not np.isfinite(m).all() or (m == 0).any():
        raise ValueError("metric values must be finite and non-zero (the fit is on log|M|)")
    if np.unique(n).size < 2:
        raise ValueError("all models have the same size: the slope is undefined")
    return np.log(n), np.log(np.abs(m))


def _r2(y, y_hat) -> float:
    ss_res = float(np.sum((y - y_hat) ** 2))
    ss_tot = float(np.sum((y - y.mean()) ** 2))
    if ss_tot == 0.0:
        return 1.0 if ss_res == 0.0 else 0.0
    return 1.0 - ss_res / ss_tot


def fit_power_law(n, m) -> PowerLawFit:
    """Least-squares line through ``(log N, log|M|)`` (closed form, float64)."""
    x, y = _log_inputs(n, m)
    xc = x - x.mean()
    slope = float(np.dot(xc, y - y.mean()) / np.dot(xc, xc))
    intercept = float(y.mean() - slope * x.mean())
    return PowerLawFit(slope, intercept, _r2(y, intercept + slope * x), int(x.size))


def fit_with_irreducible(n, ce) -> IrreducibleFit:
    """``CE = A N^-alpha + E`` with ``0 <= E < min(CE)``, started from a grid over E."""
    n = np.asarray(n, np.float64)
    ce = np.asarray(ce, np.float64)
    _log_inputs(n, ce)
    if np.unique(n).size < 3:
        raise ValueError("a fit with an irreducible term needs at least 3 distinct sizes; got "
                         f"{np.unique(n).size}")
    if (ce <= 0).any():
        raise ValueError("CE must be positive for a fit with an irreducible term")
    x = np.log(n)
    top = float(ce.min())

    def residual(theta):
        log_a, alpha, e = theta
        return np.exp(log_a - alpha * x) + e - ce

    best = None
    for frac in np.linspace(0.0, 0.95, 20):
        e0 = frac * top
        line = fit_power_law(n, ce - e0)
        start = np.array([line.intercept, -line.slope, e0])
        sol = least_squares(
            residual, start, bounds=([-np.inf, -np.inf, 0.0], [np.inf, np.inf, top]),
            xtol=1e-15, ftol=1e-15, gtol=1e-15, max_nfev=2000,
        )
        if best is None or sol.cost < best.cost:
            best = sol
    log_a, alpha, e = best.x
    return IrreducibleFit(float(math.exp(log_a)), float(alpha), float(e),
                          _r2(ce, ce + residual(best.x)), int(n.size))


@dataclasses.dataclass(frozen=True)
class ScalingReport:
    """Fits of every metric per (dataset, family) group and per dataset mixed."""

    n_key: str
    rows: list  # one dict per (dataset, family, metric)
    irreducible: list  # one dict per (dataset, family): the CE fit with an irreducible term
    models: list  # one dict per model: sizes, metrics and the EE share

    @property
    def n_description(self) -> str:
        return N_DESCRIPTIONS[self.n_key]

    def to_dict(self) -> dict:
        return {"n_used": self.n_key, "n_description": self.n_description, "fits": self.rows,
                "ce_irreducible_fits": self.irreducible, "models": self.models}

    def to_markdown(self) -> str:
        out = [f"N = {self.n_description}.", "",
               "| dataset | family | metric | models | slope alpha | R^2 | abs(Delta) vs CE |",
               "|---|---|---|---:|---:|---:|---:|"]
        for r in self.rows:
            out.append(f"| {r['dataset']} | {r['family']} | {r['metric']} | {r['n_points']} | "
                       f"{r['slope']:.4f} | {r['r2']:.4f} | {r['abs_delta_vs_ce']:.4f} |")
        if self.irreducible:
            out += ["", "CE with an irreducible term, CE = A N^-alpha + E:", "",
                    "| dataset | family | models | A | alpha | E | R^2 (on CE) |",
                    "|---|---|---:|---:|---:|---:|---:|"]
            for r in self.irreducible:
                out.append(f"| {r['dataset']} | {r['family']} | {r['n_points']} | {r['A']:.4g} | "
                           f"{r['alpha']:.4f} | {r['E']:.4f} | {r['r2']:.4f} |")
        out += ["", "| dataset | model | family | N | CE | EE | SA | Conf | EE/CE |",
                "|---|---|---|---:|---:|---:|---:|---:|---:|"]
        for m in self.models:
            out.append(f"| {m['dataset']} | {m['model']} | {m['family']} | {m['n']:,} | {m['ce']:.4f} | "
                       f"{m['ee']:.4f} | {m['sa']:.4f} | {m['conf']:.4f} | {m['ee_share']:.4f} |")
        return "\n".join(out) + "\n"

    def to_csv(self) -> str:
        buf = io.StringIO()
        fields = ["dataset", "family", "metric", "n_used", "n_points", "slope", "intercept", "r2",
                  "abs_delta_vs_ce"]
        w = csv.DictWriter(buf, fieldnames=fields, lineterminator="\n")
        w.writeheader()
        for r in self.rows:
            w.writerow({k: r[k] for k in fields})
        return buf.getvalue()

    def write(self, out_dir, stem: str = "scaling") -> dict:
        """Write ``<stem>.md``, ``<stem>.csv`` and ``<stem>.json`` atomically; return the paths."""
        out = Path(out_dir)
        paths = {ext: out / f"{stem}.{ext}" for ext in ("md", "csv", "json")}
        write_text(paths["md"], self.to_markdown())
        write_text(paths["csv"], self.to_csv())
        write_json(paths["json"], self.to_dict())
        return paths


def model_row(rec: Mapping, n_field: str) -> dict:
    """One result record reduced to what the fits use (N from ``n_field``, the metrics, EE/CE)."""
    missing = [k for k in ("model", "family", "dataset", n_field, "ce", "ee", "sa", "conf") if k not in rec]
    if missing:
        raise ValueError(f"result {rec.get('model', '?')!r} lacks fields {missing}")
    return {"model": str(rec["model"]), "family": str(rec["family"]), "dataset": str(rec["dataset"]),
            "n": int(rec[n_field]), "ce": float(rec["ce"]), "ee": float(rec["ee"]),
            "sa": float(rec["sa"]), "conf": float(rec["conf"]),
            "ee_share": float(rec["ee"]) / float(rec["ce"]) if float(rec["ce"]) != 0 else math.nan}


def check_unique_models(models: Iterable[Mapping]) -> None:
    """Each model at most once per dataset: a record given twice would be fitted twice."""
    seen = set()
    for m in models:
        key = (m["dataset"], m["model"])
        if key in seen:
            raise ValueError(f"model {m['model']!r} on {m['dataset']!r} appears twice; give each "
                             "model once per dataset")
        seen.add(key)


def fit_groups(models: Sequence[dict]) -> Iterable[tuple[str, str, list[dict]]]:
    """(dataset, family, models) for each family of each dataset, then the dataset mixed."""
    for dataset in sorted({m["dataset"] for m in models}):
        in_ds = [m for m in models if m["dataset"] == dataset]
        families = sorted({m["family"] for m in in_ds})
        for fam in families:
            yield dataset, fam, [m for m in in_ds if m["family"] == fam]
        if len(families) > 1:
            yield dataset, MIXED, in_ds


def scaling_report(records: Iterable[Mapping], *, n_key: str = "non_embedding",
                   metrics: Sequence[str] = METRICS) -> ScalingReport:
    """Fit every metric per group; groups with fewer than two distinct sizes are left out.

    ``records`` are evaluation results with ``model``, ``family``, ``dataset``, ``n_params``,
    ``n_params_non_embedding``, ``ce``, ``ee``, ``sa`` and ``conf``.
    """
    if n_key not in N_KEYS:
        raise ValueError(f"n_key must be one of {sorted(N_KEYS)}; got {n_key!r}")
    unknown = set(metrics) - set(METRICS)
    if unknown:
        raise ValueError(f"unknown metrics {sorted(unknown)}; choose from {METRICS}")
    models = sorted((model_row(r, N_KEYS[n_key]) for r in records),
                    key=lambda m: (m["dataset"], m["family"], m["n"], m["model"]))
    if not models:
        raise ValueError("no results to fit")
    check_unique_models(models)
    rows, irreducible = [], []
    for dataset, family, group in fit_groups(models):
        n = np.array([m["n"] for m in group], np.float64)
        if np.unique(n).size < 2:
            continue
        fits = {k: fit_power_law(n, [m[k] for m in group]) for k in metrics}
        ce_slope = fits["ce"].slope if "ce" in fits else fit_power_law(n, [m["ce"] for m in group]).slope
        for k, f in fits.items():
            rows.append({"dataset": dataset, "family": family, "metric": k, "n_used": n_key,
                         "n_points": f.n_points, "slope": f.slope, "intercept": f.intercept,
                         "r2": f.r2, "abs_delta_vs_ce": abs(f.slope - ce_slope)})
        if np.unique(n).size >= 3:
            irr = fit_with_irreducible(n, [m["ce"] for m in group])
            irreducible.append({"dataset": dataset, "family": family, "n_used": n_key,
                                **dataclasses.asdict(irr)})
    return ScalingReport(n_key, rows, irreducible, models)
