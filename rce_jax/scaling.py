"""Scaling-law fits of the decomposition against model size (docs/design.md#3-scaling-fits).

For a group of models with sizes ``N_m`` and a metric ``M``: ``log|M| = c + alpha log N`` by
least squares, with ``R^2`` in log space and ``|Delta_M| = |alpha_M - alpha_CE|``. CE is also
fitted with an irreducible term, ``CE = A N^-alpha + E``.

Grouping (``group_key``): results are fitted together only when they were scored on the same
corpus (its content fingerprint, not the path it was given by) under the same number-changing
settings (``rce_jax.results.NUMBER_SETTINGS``: context length, tokenization convention, rank
vocabulary, dtype, ranked logits dtype, token cap). Within such a corpus group each family is
fitted per tokenizer (its fingerprint: one family's models normally share one), and all
families together (``all``, as the paper mixes families, whose tokenizers differ). Records
without a fingerprint (hand-made rows) group by their ``dataset`` name. A group's label is its
dataset name(s), with the settings that tell it from another group of the same name.
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
from .results import NUMBER_SETTINGS, EvalResult, is_result

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
    """Fits of every metric per (corpus group, family) and per corpus group mixed."""

    n_key: str
    rows: list  # one dict per (dataset, family, metric)
    irreducible: list  # one dict per (dataset, family): the CE fit with an irreducible term
    models: list  # one dict per model: sizes, metrics and the EE share
    groups: list = dataclasses.field(default_factory=list)  # what was grouped (describe_groups)
    warnings: list = dataclasses.field(default_factory=list)  # groups that could not be fitted
    labels: dict = dataclasses.field(default_factory=dict)  # group key -> label

    @property
    def n_description(self) -> str:
        return N_DESCRIPTIONS[self.n_key]

    def label_of(self, record: Mapping) -> str:
        """The dataset label this report gives ``record``'s corpus group."""
        return self.labels[group_key(record)]

    def to_dict(self) -> dict:
        return {"n_used": self.n_key, "n_description": self.n_description, "fits": self.rows,
                "ce_irreducible_fits": self.irreducible, "models": self.models,
                "groups": self.groups, "warnings": self.warnings}

    def grouping_summary(self) -> str:
        """What was fitted together and why, one line per group, then the warnings."""
        out = []
        for g in self.groups:
            settings = ", ".join(f"{k}={v}" for k, v in g["settings"].items()) or "as named"
            fp = f"corpus {g['corpus_fingerprint'][:12]}" if g["corpus_fingerprint"] else "no fingerprint"
            out.append(f"group {g['label']!r}: {fp} ({settings}); named {', '.join(g['names'])}; "
                       f"{len(g['models'])} results, {g['n_sizes']} sizes, families "
                       f"{', '.join(g['families'])}; {g['n_tokenizers']} tokenizer(s)")
        return "\n".join(out + [f"warning: {w}" for w in self.warnings])

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
        if self.warnings:
            out += [""] + [f"Warning: {w}" for w in self.warnings]
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


def _typed(rec: Mapping):
    """The EvalResult of a result record (any version); None for a hand-made row."""
    if isinstance(rec, EvalResult):
        return rec
    return EvalResult.from_dict(rec, f"result {rec.get('model', '?')!r}") if is_result(rec) else None


def group_key(rec: Mapping) -> tuple:
    """What must agree for two results to be fitted together (module docstring)."""
    typed = _typed(rec)
    if typed is None or not typed.corpus_fingerprint:
        return ("dataset", str(rec.get("dataset")))
    return ("corpus", typed.corpus_fingerprint, *(typed.settings[k] for k in NUMBER_SETTINGS))


def model_row(rec: Mapping, n_field: str) -> dict:
    """One result record reduced to what the fits use (N from ``n_field``, the metrics, EE/CE),
    with its corpus group key, tokenizer fingerprint and model location."""
    missing = [k for k in ("model", "family", "dataset", n_field, "ce", "ee", "sa", "conf") if k not in rec]
    if missing:
        raise ValueError(f"result {rec.get('model', '?')!r} lacks fields {missing}")
    typed = _typed(rec)
    return {"model": str(rec["model"]), "family": str(rec["family"]), "dataset": str(rec["dataset"]),
            "n": int(rec[n_field]), "ce": float(rec["ce"]), "ee": float(rec["ee"]),
            "sa": float(rec["sa"]), "conf": float(rec["conf"]),
            "ee_share": float(rec["ee"]) / float(rec["ce"]) if float(rec["ce"]) != 0 else math.nan,
            "group": group_key(rec),
            "tokenizer": typed.tokenizer_fingerprint if typed is not None else None,
            "model_path": typed.model_path if typed is not None else None}


def _group(m: Mapping) -> tuple:
    return m.get("group", ("dataset", m["dataset"]))


def check_unique_models(models: Iterable[Mapping]) -> None:
    """Each model at most once per corpus group: a record given twice would be fitted twice."""
    seen = set()
    for m in models:
        key = (_group(m), m["model"], m.get("model_path"))
        if key in seen:
            raise ValueError(f"model {m['model']!r} on {m['dataset']!r} appears twice; give each "
                             "model once per dataset")
        seen.add(key)


def label_groups(models: Sequence[Mapping]) -> dict:
    """group key -> label: the dataset name(s), plus what tells apart groups of the same name."""
    names: dict = {}
    for m in models:
        names.setdefault(_group(m), set()).add(m["dataset"])
    base = {k: "|".join(sorted(v)) for k, v in names.items()}
    labels = {}
    for key, name in base.items():
        same = [k for k, b in base.items() if b == name]
        if len(same) == 1 or key[0] != "corpus":
            labels[key] = name
            continue
        settings = dict(zip(NUMBER_SETTINGS, key[2:]))
        differing = [k for k in NUMBER_SETTINGS if len({dict(zip(NUMBER_SETTINGS, o[2:]))[k] for o in same}) > 1]
        parts = [f"{k}={settings[k]}" for k in differing]
        if len({o[1] for o in same}) > 1:
            parts.append(f"corpus {key[1][:8]}")
        labels[key] = f"{name} [{', '.join(parts)}]"
    return labels


def fit_groups(models: Sequence[dict]) -> Iterable[tuple[str, str, list[dict]]]:
    """(label, family, models) for each family (and tokenizer) of each corpus group, then the
    group mixed. Family labels get ``@<tokenizer>`` only when one family has several tokenizers."""
    labels = label_groups(models)
    for key in sorted(labels, key=lambda k: (labels[k], k)):
        in_group = [m for m in models if _group(m) == key]
        families = sorted({m["family"] for m in in_group})
        for fam in families:
            in_fam = [m for m in in_group if m["family"] == fam]
            tokenizers = sorted({str(m.get("tokenizer")) for m in in_fam})
            for tok in tokenizers:
                label = fam if len(tokenizers) == 1 else f"{fam}@{tok[:8]}"
                yield labels[key], label, [m for m in in_fam if str(m.get("tokenizer")) == tok]
        if len(families) > 1:
            yield labels[key], MIXED, in_group


def describe_groups(models: Sequence[dict], labels: Mapping) -> list[dict]:
    """What was grouped: per corpus group its label, fingerprint, settings, names and models."""
    out = []
    for key in sorted(labels, key=lambda k: (labels[k], k)):
        in_group = [m for m in models if _group(m) == key]
        out.append({"label": labels[key], "corpus_fingerprint": key[1] if key[0] == "corpus" else None,
                    "settings": dict(zip(NUMBER_SETTINGS, key[2:])) if key[0] == "corpus" else {},
                    "names": sorted({m.get("dataset_name", m["dataset"]) for m in in_group}),
                    "families": sorted({m["family"] for m in in_group}),
                    "n_tokenizers": len({m.get("tokenizer") for m in in_group}),
                    "n_sizes": len({m["n"] for m in in_group}),
                    "models": [m["model"] for m in in_group]})
    return out


def scaling_report(records: Iterable[Mapping], *, n_key: str = "non_embedding",
                   metrics: Sequence[str] = METRICS) -> ScalingReport:
    """Fit every metric per group (module docstring). A group with fewer than two distinct sizes
    is not fitted and is named in ``warnings``; none is dropped silently.

    ``records`` are evaluation results (``rce_jax.results.EvalResult`` or their JSON objects, of
    any readable version) or hand-made rows with ``model``, ``family``, ``dataset``,
    ``n_params``, ``n_params_non_embedding``, ``ce``, ``ee``, ``sa`` and ``conf``.
    """
    if n_key not in N_KEYS:
        raise ValueError(f"n_key must be one of {sorted(N_KEYS)}; got {n_key!r}")
    unknown = set(metrics) - set(METRICS)
    if unknown:
        raise ValueError(f"unknown metrics {sorted(unknown)}; choose from {METRICS}")
    models = [model_row(r, N_KEYS[n_key]) for r in records]
    if not models:
        raise ValueError("no results to fit")
    check_unique_models(models)
    labels = label_groups(models)
    # Two models sharing a name in one group are told apart by where they were loaded from.
    for key in labels:
        in_group = [m for m in models if m["group"] == key]
        names = [m["model"] for m in in_group]
        for m in in_group:
            if names.count(m["model"]) > 1 and m["model_path"]:
                m["model"] = f"{m['model']} ({m['model_path']})"
    for m in models:
        m["dataset_name"], m["dataset"] = m["dataset"], labels[m["group"]]
    models.sort(key=lambda m: (m["dataset"], m["family"], m["n"], m["model"]))
    rows, irreducible, warnings = [], [], []
    for dataset, family, group in fit_groups(models):
        n = np.array([m["n"] for m in group], np.float64)
        if np.unique(n).size < 2:
            warnings.append(f"{dataset!r}, family {family!r}: {np.unique(n).size} model size "
                            f"({', '.join(m['model'] for m in group)}); a fit needs 2, none made")
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
    groups = describe_groups(models, labels)
    public = [{k: v for k, v in m.items() if k not in ("group", "tokenizer", "model_path", "dataset_name")}
              for m in models]
    return ScalingReport(n_key, rows, irreducible, public, groups, warnings, labels)
