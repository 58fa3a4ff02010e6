"""Power-law fits of one metric against model size, with their uncertainty (docs/design.md#3-scaling-fits, docs/uncertainty.md).

``log|M| = c + alpha log N`` by least squares over the models of a group, with ``R^2`` in log
space; CE also with an irreducible term, ``CE = A N^-alpha + E`` (given at least four distinct
sizes). Every fit carries three kinds of uncertainty: the OLS standard error of alpha with its
t-interval (model-to-model scatter about the line), the leave-one-model-out range of alpha and
R^2, and the document-bootstrap interval of alpha and R^2 (each model's metric per bootstrap
replicate, from ``rce-jax eval``; the replicates pair across models and metrics of a corpus
because they share the document weights). Comparisons between metrics (``R^2(M) - R^2(CE)``,
``|Delta_EE| - |Delta_M|``) are paired per replicate. Pure NumPy/SciPy: which results are fitted
together is ``rce_jax.report``'s business.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence

import numpy as np
from scipy import stats as sps
from scipy.optimize import least_squares

from .bootstrap import percentile_interval

LEVEL = 0.95  # the level of every interval of the fits



@dataclasses.dataclass(frozen=True)
class PowerLawFit:
    """``log|M| = intercept + slope * log N`` over ``n_points`` models.

    ``slope_se``: the OLS standard error of the slope, ``sqrt(s^2 / Sxx)`` with the residual
    variance ``s^2`` on ``n_points - 2`` degrees of freedom (NaN with two points); ``slope_lo`` /
    ``slope_hi``: its Student-t interval at ``level``. ``x_mean``, ``sxx`` and ``s2`` give the
    confidence band of the fitted line (``band``).
    """

    slope: float
    intercept: float
    r2: float
    n_points: int
    slope_se: float = math.nan
    slope_lo: float = math.nan
    slope_hi: float = math.nan
    level: float = LEVEL
    x_mean: float = math.nan
    sxx: float = math.nan
    s2: float = math.nan

    def predict(self, n) -> np.ndarray:
        """|M| at size(s) ``n``."""
        return np.exp(self.intercept + self.slope * np.log(np.asarray(n, np.float64)))

    def band(self, n) -> tuple[np.ndarray, np.ndarray]:
        """The ``level`` confidence band of the fitted |M| (the mean line) at size(s) ``n``:
        ``exp(yhat -+ t * sqrt(s^2 (1/n + (x - xbar)^2 / Sxx)))``; NaN with two points."""
        x = np.log(np.asarray(n, np.float64))
        y = self.intercept + self.slope * x
        if self.n_points < 3:
            nan = np.full_like(y, np.nan)
            return nan, nan
        t = sps.t.ppf(0.5 + self.level / 2, self.n_points - 2)
        half = t * np.sqrt(self.s2 * (1.0 / self.n_points + (x - self.x_mean) ** 2 / self.sxx))
        return np.exp(y - half), np.exp(y + half)


MIN_IRREDUCIBLE_SIZES = 4


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


def fit_power_law(n, m, level: float = LEVEL) -> PowerLawFit:
    """Least-squares line through ``(log N, log|M|)`` (closed form, float64), with the OLS
    standard error and t-interval of the slope."""
    x, y = _log_inputs(n, m)
    xc = x - x.mean()
    sxx = float(np.dot(xc, xc))
    slope = float(np.dot(xc, y - y.mean()) / sxx)
    intercept = float(y.mean() - slope * x.mean())
    resid = y - (intercept + slope * x)
    dof = x.size - 2
    s2 = float(np.dot(resid, resid) / dof) if dof > 0 else math.nan
    se = math.sqrt(s2 / sxx) if dof > 0 else math.nan
    t = float(sps.t.ppf(0.5 + level / 2, dof)) if dof > 0 else math.nan
    return PowerLawFit(slope, intercept, _r2(y, intercept + slope * x), int(x.size), slope_se=se,
                       slope_lo=slope - t * se, slope_hi=slope + t * se, level=level,
                       x_mean=float(x.mean()), sxx=sxx, s2=s2)


def _line_fits_RxM(x_M: np.ndarray, y_RxM: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(slope, R^2) of the least-squares line of every row of ``y`` on ``x`` (rows with a
    non-finite value give NaN)."""
    xc = x_M - x_M.mean()
    yc = y_RxM - y_RxM.mean(axis=1, keepdims=True)
    slope = yc @ xc / np.dot(xc, xc)
    ss_res = np.sum((yc - slope[:, None] * xc[None, :]) ** 2, axis=1)
    ss_tot = np.sum(yc ** 2, axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        r2 = np.where(ss_tot > 0, 1.0 - ss_res / ss_tot, np.where(ss_res == 0, 1.0, 0.0))
    bad = ~np.isfinite(y_RxM).all(axis=1)
    return np.where(bad, np.nan, slope), np.where(bad, np.nan, r2)


def leave_one_out(n, m) -> list[PowerLawFit]:
    """The fits without each model in turn (none with fewer than three models, or where the
    remaining models have a single size)."""
    n = np.asarray(n, np.float64)
    m = np.asarray(m, np.float64)
    if n.size < 3:
        return []
    fits = []
    for i in range(n.size):
        keep = np.arange(n.size) != i
        if np.unique(n[keep]).size >= 2:
            fits.append(fit_power_law(n[keep], m[keep]))
    return fits


def _log_abs(v):
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.log(np.abs(np.asarray(v, np.float64)))


def fit_metrics(n, values: Mapping[str, Sequence[float]], replicates: Mapping[str, np.ndarray] | None = None,
                level: float = LEVEL, metrics: Sequence[str] | None = None) -> tuple[dict, list]:
    """Every metric's fit with its intervals, and the paired comparisons between metrics.

    ``values[k]``: metric ``k`` per model (``"ce"`` among them: |Delta| is measured against it);
    ``metrics``: those to fit (default: all of ``values``); ``replicates[k]``: ``[models, R]`` bootstrap values of
    the same models (shared document weights), or None. Returns ``(rows, comparisons)``: ``rows[k]``
    a dict (slope, OLS se and interval, R^2, leave-one-model-out ranges, bootstrap intervals,
    |Delta| vs CE), ``comparisons`` a list of dicts (see ``compare``).
    """
    n = np.asarray(n, np.float64)
    x = np.log(n)
    metrics = list(values) if metrics is None else list(metrics)
    fits = {k: fit_power_law(n, values[k], level) for k in {*metrics, "ce"}}
    ce_fit = fits["ce"]
    loo = {k: leave_one_out(n, values[k]) for k in {*metrics, "ce"}}
    loo_ce = loo["ce"]
    boot = {}
    if replicates is not None:
        for k in {*metrics, "ce"}:
            boot[k] = _line_fits_RxM(x, _log_abs(np.asarray(replicates[k], np.float64)).T)
    rows = {}
    for k in metrics:
        f = fits[k]
        row = {"n_points": f.n_points, "slope": f.slope, "intercept": f.intercept, "r2": f.r2,
               "slope_se": f.slope_se, "slope_lo": f.slope_lo, "slope_hi": f.slope_hi, "level": level,
               "abs_delta_vs_ce": abs(f.slope - ce_fit.slope),
               "loo_slope_min": min((g.slope for g in loo[k]), default=math.nan),
               "loo_slope_max": max((g.slope for g in loo[k]), default=math.nan),
               "loo_r2_min": min((g.r2 for g in loo[k]), default=math.nan),
               "loo_r2_max": max((g.r2 for g in loo[k]), default=math.nan),
               "bootstrap_replicates": 0}
        row["boot_slope_lo"] = row["boot_slope_hi"] = row["boot_r2_lo"] = row["boot_r2_hi"] = math.nan
        row["boot_abs_delta_lo"] = row["boot_abs_delta_hi"] = math.nan
        if k in boot:
            slope_R, r2_R = boot[k]
            row["bootstrap_replicates"] = int(np.isfinite(slope_R).sum())
            row["boot_slope_lo"], row["boot_slope_hi"] = percentile_interval(slope_R, level)
            row["boot_r2_lo"], row["boot_r2_hi"] = percentile_interval(r2_R, level)
            row["boot_abs_delta_lo"], row["boot_abs_delta_hi"] = percentile_interval(
                np.abs(slope_R - boot["ce"][0]), level)
        rows[k] = row
    comparisons = []  # between the laws of the paper (the EE share is a ratio, not one of them)
    for k in metrics:
        if k not in ("ee", "sa", "conf"):
            continue
        loo_diff = [a.r2 - b.r2 for a, b in zip(loo[k], loo_ce)]
        comparisons.append(compare(f"R^2({k}) - R^2(ce)", fits[k].r2 - ce_fit.r2, loo_diff,
                                   boot[k][1] - boot["ce"][1] if k in boot else None, level))
    if "ee" in metrics:
        for k in metrics:
            if k not in ("sa", "conf"):
                continue
            est = abs(fits["ee"].slope - ce_fit.slope) - abs(fits[k].slope - ce_fit.slope)
            loo_diff = [abs(a.slope - c.slope) - abs(b.slope - c.slope)
                        for a, b, c in zip(loo["ee"], loo[k], loo_ce)]
            boot_diff = None
            if k in boot:
                boot_diff = np.abs(boot["ee"][0] - boot["ce"][0]) - np.abs(boot[k][0] - boot["ce"][0])
            comparisons.append(compare(f"|Delta(ee)| - |Delta({k})|", est, loo_diff, boot_diff, level))
    return rows, comparisons


def compare(name: str, estimate: float, loo_values: Sequence[float], boot_values, level: float) -> dict:
    """A paired difference with its bootstrap interval and leave-one-model-out range.

    ``resolved`` (the sign of the difference is what the data say) when the bootstrap interval
    excludes zero *and* every leave-one-model-out fit gives the same sign: both document sampling
    and the choice of models must leave the sign unchanged. Otherwise the data do not resolve it.
    """
    lo, hi = percentile_interval(boot_values, level) if boot_values is not None else (math.nan, math.nan)
    loo_min = min(loo_values, default=math.nan)
    loo_max = max(loo_values, default=math.nan)
    boot_ok = np.isfinite(lo) and (lo > 0 or hi < 0)
    loo_ok = bool(loo_values) and (loo_min > 0 or loo_max < 0)
    same = boot_ok and loo_ok and (lo > 0) == (loo_min > 0) == (estimate > 0)
    if same:
        why = ""
    elif boot_values is None:
        why = "no bootstrap replicates (results evaluated with --bootstrap 0 or unpaired)"
    elif not loo_values:
        why = "fewer than three models: no leave-one-model-out check"
    elif not boot_ok:
        why = "the bootstrap interval contains zero"
    else:
        why = "leaving one model out changes the sign"
    return {"comparison": name, "estimate": float(estimate), "boot_lo": lo, "boot_hi": hi,
            "loo_min": loo_min, "loo_max": loo_max, "level": level, "resolved": bool(same),
            "sign": (1 if estimate > 0 else -1) if same else 0, "unresolved_because": why}


def fit_with_irreducible(n, ce) -> IrreducibleFit:
    """``CE = A N^-alpha + E`` with ``0 <= E < min(CE)``, started from a grid over E.

    Three parameters need at least four distinct sizes: with three the curve passes through
    every point and the fit tells nothing (R^2 = 1 whatever the data)."""
    n = np.asarray(n, np.float64)
    ce = np.asarray(ce, np.float64)
    _log_inputs(n, ce)
    if np.unique(n).size < MIN_IRREDUCIBLE_SIZES:
        raise ValueError(f"a fit with an irreducible term (3 parameters) needs at least "
                         f"{MIN_IRREDUCIBLE_SIZES} distinct sizes; got {np.unique(n).size}")
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
