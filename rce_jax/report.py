"""The scaling report: result records grouped into fittable sets, every metric fitted per
group (``rce_jax.fits``), written as Markdown, CSV and JSON (docs/design.md#3-scaling-fits).

Grouping (``group_key``): results are fitted together only when they were scored on the same
corpus (its content fingerprint, not the path it was given by) under the same number-changing
settings (``rce_jax.results.NUMBER_SETTINGS``: context length, tokenization convention, rank
vocabulary, dtype, ranked logits dtype, token cap). Within such a corpus group each family is
fitted per tokenizer (its fingerprint: one family's models normally share one), and all
families together (``all``, as the paper mixes families, whose tokenizers differ). Records
without a fingerprint (hand-made rows) group by their ``dataset`` name. A group's label is its
dataset name(s), with the settings that tell it from another group of the same name. The
figures of a report are drawn by ``rce_jax.plots``.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import math
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import numpy as np

from .fits import LEVEL, MIN_IRREDUCIBLE_SIZES, fit_metrics, fit_with_irreducible
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
class ScalingReport:
    """Fits of every metric per (corpus group, family) and per corpus group mixed."""

    n_key: str
    rows: list  # one dict per (dataset, family, metric)
    irreducible: list  # one dict per (dataset, family): the CE fit with an irreducible term
    models: list  # one dict per model: sizes, metrics and the EE share
    groups: list = dataclasses.field(default_factory=list)  # what was grouped (describe_groups)
    warnings: list = dataclasses.field(default_factory=list)  # groups that could not be fitted
    labels: dict = dataclasses.field(default_factory=dict)  # group key -> label
    comparisons: list = dataclasses.field(default_factory=list)  # paired differences between metrics
    notes: list = dataclasses.field(default_factory=list)  # one dict per group: pooling, bootstrap

    @property
    def n_description(self) -> str:
        return N_DESCRIPTIONS[self.n_key]

    def label_of(self, record: Mapping) -> str:
        """The dataset label this report gives ``record``'s corpus group."""
        return self.labels[group_key(record)]

    def to_dict(self) -> dict:
        return {"n_used": self.n_key, "n_description": self.n_description,
                "level": LEVEL, "fits": self.rows, "comparisons": self.comparisons,
                "ce_irreducible_fits": self.irreducible,
                "models": [{k: v for k, v in m.items() if k != "replicates"} for m in self.models],
                "groups": self.groups, "group_notes": self.notes, "warnings": self.warnings}

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
        pct = f"{LEVEL:.0%}"
        out = [f"N = {self.n_description}. Intervals are {pct}: OLS = Student-t interval of the slope "
               "from the scatter of the models about the line (with its standard error); LOO = range "
               "over the fits that leave one model out; boot = percentile interval over the "
               "document-bootstrap replicates of `rce-jax eval` (paired across the models and metrics "
               "of a corpus).", "",
               "| dataset | family | metric | models | alpha +- se | alpha OLS | alpha LOO | alpha boot | "
               "R^2 | R^2 LOO | R^2 boot | abs(Delta) vs CE [boot] |",
               "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
        for r in self.rows:
            out.append(f"| {r['dataset']} | {r['family']} | {r['metric']} | {r['n_points']} | "
                       f"{r['slope']:.4f} +- {_f(r['slope_se'])} | {_iv(r['slope_lo'], r['slope_hi'])} | "
                       f"{_iv(r['loo_slope_min'], r['loo_slope_max'])} | "
                       f"{_iv(r['boot_slope_lo'], r['boot_slope_hi'])} | {r['r2']:.4f} | "
                       f"{_iv(r['loo_r2_min'], r['loo_r2_max'])} | {_iv(r['boot_r2_lo'], r['boot_r2_hi'])} | "
                       f"{r['abs_delta_vs_ce']:.4f} {_iv(r['boot_abs_delta_lo'], r['boot_abs_delta_hi'])} |")
        if self.comparisons:
            out += ["", "Paired comparisons between metrics (resolved: the bootstrap interval excludes 0 "
                    "and every leave-one-model-out fit has the same sign):", "",
                    f"| dataset | family | comparison | estimate | {pct} boot | LOO range | verdict |",
                    "|---|---|---|---:|---:|---:|---|"]
            for c in self.comparisons:
                verdict = "resolved" if c["resolved"] else f"not resolved: {c['unresolved_because']}"
                out.append(f"| {c['dataset']} | {c['family']} | {c['comparison']} | {c['estimate']:+.4f} | "
                           f"{_iv(c['boot_lo'], c['boot_hi'])} | {_iv(c['loo_min'], c['loo_max'])} | {verdict} |")
        notes = [g["note"] for g in self.notes if g.get("note")]
        if notes:
            out += [""] + [f"- {t}" for t in notes]
        if self.irreducible:
            out += ["", "CE with an irreducible term, CE = A N^-alpha + E:", "",
                    "| dataset | family | models | A | alpha | alpha LOO | E | E LOO | R^2 (on CE) |",
                    "|---|---|---:|---:|---:|---:|---:|---:|---:|"]
            for r in self.irreducible:
                if not r["fitted"]:
                    out.append(f"| {r['dataset']} | {r['family']} | {r['n_points']} | not fitted: "
                               f"{r['reason']} | | | | | |")
                    continue
                out.append(f"| {r['dataset']} | {r['family']} | {r['n_points']} | {r['A']:.4g} | "
                           f"{r['alpha']:.4f} | {_iv(r['loo_alpha_min'], r['loo_alpha_max'])} | {r['E']:.4f} | "
                           f"{_iv(r['loo_E_min'], r['loo_E_max'])} | {r['r2']:.4f} |")
        out += ["", f"| dataset | model | family | N | CE [{pct}] | EE [{pct}] | SA [{pct}] | Conf [{pct}] | "
                f"EE/CE [{pct}] |", "|---|---|---|---:|---:|---:|---:|---:|---:|"]
        for m in self.models:
            iv = m.get("intervals") or {}
            cells = [f"{m[k]:.4f} {_iv(*iv[k])}" if k in iv else f"{m[k]:.4f}" for k in METRICS]
            out.append(f"| {m['dataset']} | {m['model']} | {m['family']} | {m['n']:,} | " + " | ".join(cells) + " |")
        if self.warnings:
            out += [""] + [f"Warning: {w}" for w in self.warnings]
        return "\n".join(out) + "\n"

    def to_csv(self) -> str:
        buf = io.StringIO()
        w = csv.DictWriter(buf, fieldnames=CSV_FIELDS, lineterminator="\n")
        w.writeheader()
        for r in self.rows:
            w.writerow({k: r[k] for k in CSV_FIELDS})
        return buf.getvalue()

    def comparisons_csv(self) -> str:
        buf = io.StringIO()
        fields = ["dataset", "family", "comparison", "estimate", "boot_lo", "boot_hi", "loo_min", "loo_max",
                  "level", "resolved", "unresolved_because"]
        w = csv.DictWriter(buf, fieldnames=fields, lineterminator="\n")
        w.writeheader()
        for c in self.comparisons:
            w.writerow({k: c[k] for k in fields})
        return buf.getvalue()

    def write(self, out_dir, stem: str = "scaling") -> dict:
        """Write ``<stem>.md``, ``<stem>.csv`` (fits), ``<stem>_comparisons.csv`` and
        ``<stem>.json`` atomically; return the paths."""
        out = Path(out_dir)
        paths = {ext: out / f"{stem}.{ext}" for ext in ("md", "csv", "json")}
        paths["comparisons_csv"] = out / f"{stem}_comparisons.csv"
        write_text(paths["md"], self.to_markdown())
        write_text(paths["csv"], self.to_csv())
        write_text(paths["comparisons_csv"], self.comparisons_csv())
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


CSV_FIELDS = ["dataset", "family", "metric", "n_used", "n_points", "slope", "slope_se", "slope_lo", "slope_hi",
              "loo_slope_min", "loo_slope_max", "boot_slope_lo", "boot_slope_hi", "intercept", "r2",
              "loo_r2_min", "loo_r2_max", "boot_r2_lo", "boot_r2_hi", "abs_delta_vs_ce", "boot_abs_delta_lo",
              "boot_abs_delta_hi", "level", "bootstrap_replicates"]


def _f(v) -> str:
    return "-" if v is None or not math.isfinite(v) else f"{v:.4f}"


def _iv(lo, hi) -> str:
    """``[lo, hi]``, or ``-`` when the interval is not available."""
    if lo is None or hi is None or not (math.isfinite(lo) and math.isfinite(hi)):
        return "-"
    return f"[{lo:.4f}, {hi:.4f}]"


def uncertainty_fields(rec: Mapping, typed: EvalResult | None = None) -> dict:
    """What the fits need from a result besides the point metrics: its bootstrap intervals and
    replicate values (with their settings, to check that models pair) and its tokenizer
    (``typed``: the record as an EvalResult, whose tokenizer fingerprint is authoritative)."""
    iv = rec.get("intervals") or {}
    settings = rec.get("settings") or {}
    boot = settings.get("bootstrap") or ({k: iv[k] for k in ("replicates", "seed", "level")} if iv else None)
    reps = iv.get("replicates_values")
    return {"intervals": {k: (iv[k]["lo"], iv[k]["hi"]) for k in METRICS if isinstance(iv.get(k), dict)},
            "replicates": ({k: [math.nan if v is None else float(v) for v in reps[k]] for k in reps}
                           if reps else None),
            "bootstrap": boot,
            "tokenizer": {"vocab_size": settings.get("tokenizer_size"),
                          "fingerprint": (typed.tokenizer_fingerprint if typed is not None
                                          else settings.get("tokenizer_fingerprint"))}}


def group_replicates(group: Sequence[Mapping], metrics) -> tuple[dict | None, str]:
    """``{metric: [models, R]}`` when every model of the group has bootstrap replicates under the
    same settings (so replicate b used the same document weights everywhere), else None and why."""
    settings = [m.get("bootstrap") for m in group]
    if any(s is None or m.get("replicates") is None for s, m in zip(settings, group)):
        return None, "not every result has bootstrap replicates (evaluated with --bootstrap 0?)"
    keyed = {(s["replicates"], s["seed"]) for s in settings}
    if len(keyed) > 1:
        return None, (f"the results used different bootstrap settings {sorted(keyed)} (replicates, seed), "
                      "so their replicates do not pair")
    need = {*metrics, "ce"}
    return {k: np.array([m["replicates"][k] for m in group], np.float64) for k in need}, ""


def tokenizer_note(group: Sequence[Mapping]) -> tuple[list, bool]:
    """The distinct tokenizers of a group (vocabulary size, fingerprint, families) and whether
    they differ (per-token CE over different vocabularies are different quantities)."""
    seen: dict = {}
    for m in group:
        t = m.get("tokenizer") or {}
        key = (t.get("vocab_size"), t.get("fingerprint"))
        seen.setdefault(key, set()).add(m["family"])
    toks = [{"vocab_size": v, "fingerprint": f, "families": sorted(fams)} for (v, f), fams in seen.items()]
    return toks, len(seen) > 1


def fit_group(dataset: str, family: str, group: Sequence[Mapping], n_key: str, metrics) -> dict:
    """The fits, comparisons, irreducible fit and notes of one group of models."""
    n = np.array([m["n"] for m in group], np.float64)
    values = {k: [m[k] for m in group] for k in metrics}
    values.setdefault("ce", [m["ce"] for m in group])
    reps, why_not = group_replicates(group, metrics)
    rows, comparisons = fit_metrics(n, values, reps, metrics=metrics)
    key = {"dataset": dataset, "family": family}
    fit_rows = [{**key, "metric": k, "n_used": n_key, **rows[k]} for k in metrics]
    comparisons = [{**key, **c} for c in comparisons]
    toks, differ = tokenizer_note(group)
    note = {**key, "n_models": len(group), "tokenizers": toks, "tokenizers_differ": differ,
            "bootstrap": bool(reps), "bootstrap_missing_because": why_not}
    text = []
    if differ:
        text.append(f"{dataset} / {family}: the models use {len(toks)} different tokenizers ("
                    + "; ".join(f"{', '.join(t['families'])}: {t['vocab_size']} entries, fingerprint "
                                f"{str(t['fingerprint'])[:12]}" for t in toks)
                    + "); per-token CE over different vocabularies and token boundaries are different "
                    "quantities, so this mixed fit compares unlike numbers.")
    if not reps:
        text.append(f"{dataset} / {family}: no bootstrap intervals: {why_not}.")
    note["note"] = " ".join(text)
    distinct = int(np.unique(n).size)
    irr = {**key, "n_used": n_key, "n_points": int(n.size), "distinct_sizes": distinct}
    if distinct < MIN_IRREDUCIBLE_SIZES:
        irr.update(fitted=False, reason=f"{distinct} distinct sizes for 3 parameters (needs "
                                        f"{MIN_IRREDUCIBLE_SIZES})")
    else:
        ce = np.array([m["ce"] for m in group], np.float64)
        fit = fit_with_irreducible(n, ce)
        loo = []
        for i in range(n.size):
            keep = np.arange(n.size) != i
            if np.unique(n[keep]).size >= MIN_IRREDUCIBLE_SIZES:
                loo.append(fit_with_irreducible(n[keep], ce[keep]))
        irr.update(fitted=True, reason="", **dataclasses.asdict(fit),
                   loo_alpha_min=min((f.alpha for f in loo), default=math.nan),
                   loo_alpha_max=max((f.alpha for f in loo), default=math.nan),
                   loo_E_min=min((f.E for f in loo), default=math.nan),
                   loo_E_max=max((f.E for f in loo), default=math.nan))
    return {"rows": fit_rows, "comparisons": comparisons, "irreducible": irr, "note": note}


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
            "model_path": typed.model_path if typed is not None else None,
            **uncertainty_fields(rec, typed)}


def _group(m: Mapping) -> tuple:
    return m.get("group", ("dataset", m["dataset"]))


def _tokenizer_id(m: Mapping) -> str:
    """The tokenizer a model row was scored with (its fingerprint; None for hand-made rows)."""
    return str((m.get("tokenizer") or {}).get("fingerprint"))


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
            tokenizers = sorted({_tokenizer_id(m) for m in in_fam})
            for tok in tokenizers:
                label = fam if len(tokenizers) == 1 else f"{fam}@{tok[:8]}"
                yield labels[key], label, [m for m in in_fam if _tokenizer_id(m) == tok]
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
                    "n_tokenizers": len({_tokenizer_id(m) for m in in_group}),
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
    rows, irreducible, comparisons, notes, warnings = [], [], [], [], []
    for dataset, family, group in fit_groups(models):
        n = np.array([m["n"] for m in group], np.float64)
        if np.unique(n).size < 2:
            warnings.append(f"{dataset!r}, family {family!r}: {np.unique(n).size} model size "
                            f"({', '.join(m['model'] for m in group)}); a fit needs 2, none made")
            continue
        g = fit_group(dataset, family, group, n_key, metrics)
        rows += g["rows"]
        comparisons += g["comparisons"]
        irreducible.append(g["irreducible"])
        notes.append(g["note"])
    groups = describe_groups(models, labels)
    public = [{k: v for k, v in m.items() if k not in ("group", "tokenizer", "model_path", "dataset_name")}
              for m in models]
    return ScalingReport(n_key, rows, irreducible, public, groups, warnings, labels, comparisons, notes)
