"""Fit on the smaller models, forecast the larger: the error-entropy law against the CE laws
(issue 6, experiment d).

    python experiments/extrapolation.py runs/paper/scaling.json --out runs/paper/extrapolation
    python experiments/extrapolation.py results/ --out extrap --holdout 3 --n total
    python -m rce_jax.paper.extrapolation results/ --out extrap   # the same as the script

Input: ``rce-jax eval`` result JSONs (files, or folders of them), JSON lists of such results, or
the ``scaling.json`` report of ``rce-jax scaling`` / ``paper_models.py`` (its model table, with
its own N). Groups: every (dataset, family) and every dataset with its families mixed ("all").

In a group sorted by N (ties by model name), the smallest ``k = n - h`` models form the fitted
set F and the ``h`` largest are held out (``h = --holdout``, default 2). Fitted on F only, each
held-out model's CE is forecast three ways:

``ce_power_law``
    ``log CE = c + a log N`` by least squares over F; ``CE^ = exp(c) N^a``.
``ce_irreducible``
    ``CE = A N^-alpha + E`` by nonlinear least squares over F with ``0 <= E <= min_F CE``
    (``rce_jax.fits.fit_with_irreducible``); ``CE^ = A N^-alpha + E``. Needs at least 4
    distinct sizes in F; otherwise it is listed as not available for the group.
``ee_law``
    ``log EE = c' + a' log N`` by least squares over F, ``EE^ = exp(c') N^a'``;
    ``D = (1/|F|) sum_{m in F} (SA_m - Conf_m)``; ``CE^ = EE^ + D``.
    As ``CE = EE + SA - Conf`` exactly, its error for a held-out model m is
    ``(EE^(N_m) - EE_m) + (D - (SA_m - Conf_m))``: it is exact when EE is a pure power law in N
    and SA - Conf is the same for every model (the paper: SA and Conf hardly change with size).

The EE forecast itself is reported too (method ``ee_power_law``, target ``ee``). Per held-out
model and method: ``error = forecast - actual``, ``abs_error = |error|``,
``rel_error = |error| / actual``. Outputs in ``--out``: ``extrapolation.md`` / ``.csv`` (one row
per held-out model x method) / ``.json`` (also the fitted parameters, per-group summaries and the
groups skipped with the reason) and ``extrapolation_<dataset>_<family>.png`` (fits and forecasts
against N).
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import io
import sys
from pathlib import Path

import numpy as np

from ..cli import run_script
from ..io import check_output_dir, read_json_files, write_json, write_text
from ..fits import MIN_IRREDUCIBLE_SIZES, fit_power_law, fit_with_irreducible
from ..report import N_KEYS, check_unique_models, fit_groups, model_row

METHODS = ("ce_power_law", "ce_irreducible", "ee_law", "ee_power_law")
TARGET = {"ce_power_law": "ce", "ce_irreducible": "ce", "ee_law": "ce", "ee_power_law": "ee"}
ROW_FIELDS = ("dataset", "family", "model", "n", "method", "target", "forecast", "actual", "error",
              "abs_error", "rel_error", "n_fit", "n_held_out")
ROW_KEYS = ("model", "family", "dataset", "n", "ce", "ee", "sa", "conf")
IDENTITY_RTOL = 1e-6  # |CE - (EE + SA - Conf)| allowed, relative to CE


# ---- input ------------------------------------------------------------------------------------
def _report_rows(report: dict, n_key: str, where) -> list[dict]:
    if report["n_used"] != n_key:
        raise ValueError(f"{where}: the report's N is {report['n_used']!r}, not {n_key!r}; pass --n "
                         f"{report['n_used']}")
    rows = []
    for m in report["models"]:
        missing = [k for k in ROW_KEYS if k not in m]
        if missing:
            raise ValueError(f"{where}: model row {m.get('model', '?')!r} lacks {missing}")
        rows.append({k: m[k] for k in ROW_KEYS})
    return rows


def load_rows(paths, n_key: str = "non_embedding") -> list[dict]:
    """Model rows ``{model, family, dataset, n, ce, ee, sa, conf}`` from result files, folders of
    ``*.json`` results, JSON lists of results, or scaling reports."""
    if n_key not in N_KEYS:
        raise ValueError(f"n_key must be one of {sorted(N_KEYS)}; got {n_key!r}")
    rows = []
    for f, obj in read_json_files(paths):
        if isinstance(obj, dict) and "models" in obj and "n_used" in obj:
            rows += _report_rows(obj, n_key, f)
        elif isinstance(obj, dict) and "ce" in obj:
            rows.append(model_row(obj, N_KEYS[n_key]))
        elif isinstance(obj, list) and obj and all(isinstance(r, dict) and "ce" in r for r in obj):
            rows += [model_row(r, N_KEYS[n_key]) for r in obj]
        else:
            raise ValueError(f"{f}: neither an eval result, a list of them, nor a scaling report")
    return check_rows(rows)


def check_rows(rows) -> list[dict]:
    """Values finite, N and CE, EE positive, CE = EE + SA - Conf, each model once per dataset."""
    if not rows:
        raise ValueError("no results")
    for r in rows:
        missing = [k for k in ROW_KEYS if k not in r]
        if missing:
            raise ValueError(f"model row {r.get('model', '?')!r} lacks {missing}")
        where = f"model {r['model']!r} on {r['dataset']!r}"
        vals = [float(r[k]) for k in ("n", "ce", "ee", "sa", "conf")]
        if not np.isfinite(vals).all() or min(vals[:3]) <= 0:
            raise ValueError(f"{where}: N, CE and EE must be finite and positive, SA and Conf finite; got {vals}")
        off = abs(r["ce"] - (r["ee"] + r["sa"] - r["conf"]))
        if off > IDENTITY_RTOL * r["ce"]:
            raise ValueError(f"{where}: CE {r['ce']} != EE + SA - Conf (off by {off:.3g}): "
                             "not a decomposition of one evaluation")
    check_unique_models(rows)
    return [dict(r) for r in rows]


# ---- forecasting ------------------------------------------------------------------------------
@dataclasses.dataclass
class GroupForecast:
    dataset: str
    family: str
    fitted: list  # model rows of F, by N
    held_out: list  # model rows held out, by N
    fits: dict  # "ce_power_law"/"ee_power_law": PowerLawFit, "ce_irreducible": IrreducibleFit, "sa_minus_conf": float
    unavailable: dict  # method -> why
    rows: list  # one per held-out model x available method

    def predict(self, method: str, n) -> np.ndarray:
        """The forecast of ``method`` at size(s) ``n``."""
        if method == "ee_law":
            return self.fits["ee_power_law"].predict(n) + self.fits["sa_minus_conf"]
        return self.fits[method].predict(n)


def forecast_group(models, holdout: int = 2, *, dataset: str = "", family: str = "") -> GroupForecast:
    """Fit the laws on all but the ``holdout`` largest models and forecast those (see the module
    docstring for the exact definitions)."""
    if isinstance(holdout, bool) or not isinstance(holdout, int) or holdout < 1:
        raise ValueError(f"holdout must be a positive number of models, got {holdout!r}")
    models = sorted(models, key=lambda m: (m["n"], m["model"]))
    fitted, held = models[:-holdout], models[-holdout:]
    n_fit = np.array([m["n"] for m in fitted], np.float64)
    if np.unique(n_fit).size < 2:
        raise ValueError(f"{dataset}/{family}: {len(models)} models, {holdout} held out, leaves "
                         f"{np.unique(n_fit).size} distinct size(s) to fit; a power law needs 2")
    col = lambda rows, k: np.array([m[k] for m in rows], np.float64)  # noqa: E731
    fits = {"ce_power_law": fit_power_law(n_fit, col(fitted, "ce")),
            "ee_power_law": fit_power_law(n_fit, col(fitted, "ee")),
            "sa_minus_conf": float(np.mean(col(fitted, "sa") - col(fitted, "conf")))}
    unavailable = {}
    if np.unique(n_fit).size >= MIN_IRREDUCIBLE_SIZES:
        fits["ce_irreducible"] = fit_with_irreducible(n_fit, col(fitted, "ce"))
    else:
        unavailable["ce_irreducible"] = (f"needs at least {MIN_IRREDUCIBLE_SIZES} distinct fitted sizes, has "
                                         f"{np.unique(n_fit).size}")
    g = GroupForecast(dataset, family, fitted, held, fits, unavailable, [])
    for m in held:
        for method in METHODS:
            if method in unavailable:
                continue
            actual = float(m[TARGET[method]])
            forecast = float(g.predict(method, m["n"]))
            err = forecast - actual
            g.rows.append({"dataset": dataset, "family": family, "model": m["model"], "n": m["n"],
                           "method": method, "target": TARGET[method], "forecast": forecast,
                           "actual": actual, "error": err, "abs_error": abs(err),
                           "rel_error": abs(err) / actual, "n_fit": len(fitted), "n_held_out": len(held)})
    return g


@dataclasses.dataclass
class Extrapolation:
    n_key: str
    holdout: int
    groups: list  # GroupForecast
    skipped: list  # {"dataset", "family", "n_models", "reason"}

    @property
    def rows(self) -> list:
        return [r for g in self.groups for r in g.rows]

    def summary(self) -> list:
        out = []
        for g in self.groups:
            for method in METHODS:
                rs = [r for r in g.rows if r["method"] == method]
                if rs:
                    out.append({"dataset": g.dataset, "family": g.family, "method": method,
                                "target": TARGET[method], "n_held_out": len(rs),
                                "mean_abs_error": float(np.mean([r["abs_error"] for r in rs])),
                                "mean_rel_error": float(np.mean([r["rel_error"] for r in rs])),
                                "max_rel_error": float(np.max([r["rel_error"] for r in rs]))})
        return out

    def to_dict(self) -> dict:
        groups = []
        for g in self.groups:
            fits = {k: (v if isinstance(v, float) else dataclasses.asdict(v)) for k, v in g.fits.items()}
            groups.append({"dataset": g.dataset, "family": g.family,
                           "fitted": [m["model"] for m in g.fitted], "held_out": [m["model"] for m in g.held_out],
                           "fits": fits, "unavailable": g.unavailable})
        return {"n_used": self.n_key, "n_description": f"N = {self.n_key.replace('_', '-')} parameters",
                "holdout": self.holdout, "methods": list(METHODS), "forecasts": self.rows,
                "summary": self.summary(), "groups": groups, "skipped": self.skipped}

    def to_csv(self) -> str:
        buf = io.StringIO()
        w = csv.DictWriter(buf, fieldnames=ROW_FIELDS, lineterminator="\n")
        w.writeheader()
        w.writerows(self.rows)
        return buf.getvalue()

    def to_markdown(self) -> str:
        out = [f"Fit on all but the {self.holdout} largest models of each group, forecast those. "
               f"N = {self.n_key.replace('_', '-')} parameters. ee_law: CE^ = EE^ + mean over the "
               "fitted models of (SA - Conf).", "",
               "| dataset | family | method | target | held out | mean abs error | mean rel error | max rel error |",
               "|---|---|---|---|---:|---:|---:|---:|"]
        for s in self.summary():
            out.append(f"| {s['dataset']} | {s['family']} | {s['method']} | {s['target']} | {s['n_held_out']} | "
                       f"{s['mean_abs_error']:.3e} | {s['mean_rel_error']:.3e} | {s['max_rel_error']:.3e} |")
        out += ["", "| dataset | family | model | N | method | forecast | actual | error | rel error |",
                "|---|---|---|---:|---|---:|---:|---:|---:|"]
        for r in self.rows:
            out.append(f"| {r['dataset']} | {r['family']} | {r['model']} | {r['n']:,} | {r['method']} | "
                       f"{r['forecast']:.5f} | {r['actual']:.5f} | {r['error']:+.3e} | {r['rel_error']:.3e} |")
        notes = [f"- {g.dataset}/{g.family}: {m} not available ({why})"
                 for g in self.groups for m, why in g.unavailable.items()]
        notes += [f"- {s['dataset']}/{s['family']} skipped ({s['n_models']} models): {s['reason']}"
                  for s in self.skipped]
        return "\n".join(out + ([""] + notes if notes else [])) + "\n"

    def write(self, out_dir, *, figures: bool = True) -> list:
        out = Path(out_dir)
        paths = {ext: out / f"extrapolation.{ext}" for ext in ("md", "csv", "json")}
        write_text(paths["md"], self.to_markdown())
        write_text(paths["csv"], self.to_csv())
        write_json(paths["json"], self.to_dict())
        result = list(paths.values())
        if figures:
            result += [plot_group(g, out, self.n_key) for g in self.groups]
        return result


def extrapolate(rows, holdout: int = 2, *, n_key: str = "non_embedding") -> Extrapolation:
    """Forecasts for every group large enough; the others are listed in ``skipped``.

    Raises ValueError if no group has ``holdout`` models to hold out and 2 sizes left to fit.
    """
    if isinstance(holdout, bool) or not isinstance(holdout, int) or holdout < 1:
        raise ValueError(f"holdout must be a positive number of models, got {holdout!r}")
    rows = sorted(check_rows(rows), key=lambda m: (m["dataset"], m["family"], m["n"], m["model"]))
    groups, skipped = [], []
    for dataset, family, models in fit_groups(rows):
        if len(models) < holdout + 2:
            skipped.append({"dataset": dataset, "family": family, "n_models": len(models),
                            "reason": f"needs at least {holdout + 2} models ({holdout} held out, 2 to fit)"})
            continue
        try:
            groups.append(forecast_group(models, holdout, dataset=dataset, family=family))
        except ValueError as e:
            skipped.append({"dataset": dataset, "family": family, "n_models": len(models), "reason": str(e)})
    if not groups:
        raise ValueError("no group has enough models to forecast: " + "; ".join(
            f"{s['dataset']}/{s['family']}: {s['reason']}" for s in skipped))
    return Extrapolation(n_key, holdout, groups, skipped)


# ---- figure -----------------------------------------------------------------------------------
STYLE = {"ce_power_law": ("tab:blue", "-"), "ce_irreducible": ("tab:green", "--"), "ee_law": ("tab:red", "-")}


def plot_group(g: GroupForecast, out_dir, n_key: str = "non_embedding") -> Path:
    """CE, EE and SA - Conf against N: fitted models filled, held-out ones open, fits drawn over
    the whole range (the forecast region right of the dotted line)."""
    from ..io import slug
    from ..plots import log_axes, plt, save

    every = g.fitted + g.held_out
    n_all = np.array([m["n"] for m in every], float)
    grid = np.geomspace(n_all.min(), n_all.max(), 100)
    boundary = np.sqrt(g.fitted[-1]["n"] * g.held_out[0]["n"])
    fig, axes = plt.subplots(1, 3, figsize=(15, 4))
    panels = (("ce", "CE", ("ce_power_law", "ce_irreducible", "ee_law")), ("ee", "Error-Entropy", ("ee_power_law",)),
              ("sa_minus_conf", "SA - Conf", ()))
    for ax, (key, title, methods) in zip(axes, panels):
        val = (lambda m: m["sa"] - m["conf"]) if key == "sa_minus_conf" else (lambda m, k=key: m[k])
        ax.scatter([m["n"] for m in g.fitted], [val(m) for m in g.fitted], color="k", zorder=3, label="fitted")
        ax.scatter([m["n"] for m in g.held_out], [val(m) for m in g.held_out], facecolors="none",
                   edgecolors="k", zorder=3, label="held out")
        for method in methods:
            if method in g.fits or method == "ee_law":
                color, ls = STYLE.get(method, ("tab:red", "-"))
                mre = [r["rel_error"] for r in g.rows if r["method"] == method]
                ax.plot(grid, g.predict(method, grid), color=color, ls=ls, lw=1.2,
                        label=f"{method} (mean rel err {np.mean(mre):.2%})")
        if key == "sa_minus_conf":
            ax.axhline(g.fits["sa_minus_conf"], color="tab:red", lw=1.2, label="mean over fitted")
            log_axes(ax, y=False)
        else:
            log_axes(ax)
        ax.axvline(boundary, color="grey", ls=":", lw=1)
        ax.set_xlabel(f"N ({n_key.replace('_', '-')} parameters)")
        ax.set_title(title)
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=6)
    fig.suptitle(f"{g.dataset} / {g.family}: fit on {len(g.fitted)}, forecast {len(g.held_out)}")
    return save(fig, Path(out_dir) / f"extrapolation_{slug(g.dataset)}_{slug(g.family)}.png")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("inputs", nargs="+", help="result JSONs, folders of them, or a scaling.json report")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--holdout", type=int, default=2, help="largest models held out per group (default 2)")
    p.add_argument("--n", dest="n_key", choices=sorted(N_KEYS), default="non_embedding",
                   help="which parameter count is N (default non-embedding)")
    p.add_argument("--no-figures", action="store_true")
    return p


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    check_output_dir(args.out, "--out")  # before any work
    try:
        result = extrapolate(load_rows(args.inputs, args.n_key), args.holdout, n_key=args.n_key)
        paths = result.write(args.out, figures=not args.no_figures)
    except (ValueError, FileNotFoundError) as e:
        print(f"extrapolation: error: {e}", file=sys.stderr)
        return 2
    print(result.to_markdown())
    print("wrote " + ", ".join(str(p) for p in paths))
    return 0


if __name__ == "__main__":
    run_script("python -m rce_jax.paper.extrapolation", main)
