"""``report.md`` (and ``report.json``) of a ladder: recipe, tables, figures and what was found.

Every sentence under "What it found" is computed from the results, the fits and their intervals
(docs/design.md#8-uncertainty). A finding (EE's law tighter than CE's, EE's slope closest to CE's, EE's share
falling, CE falling or not at a rung) is stated only when its interval excludes the opposite:
the paired document-bootstrap interval excludes zero, the leave-one-model-out fits agree (for
comparisons of fits) and, with several seeds, the same holds in every seed. Otherwise the
sentence says that the data do not resolve it, with the numbers. Nothing is written in advance.
Each finding is computed once as a ``Finding`` record (kind, verdict, the numbers; stored in
report.json) and worded by ``render``, the one place findings become English.
"""

from __future__ import annotations

import dataclasses
import math
import os
from pathlib import Path

import numpy as np

from ..bootstrap import percentile_interval
from ..io import write_json, write_text
from ..fits import LEVEL
from ..report import MIXED

NAMES = {"ce": "CE", "ee": "EE", "sa": "SA", "conf": "Conf", "ee_share": "EE/CE"}
LAWS = ("ce", "ee", "sa", "conf")
PCT = f"{LEVEL:.0%}"
FEW_DOCUMENTS = 30  # below this the document bootstrap's intervals are flagged as rough


def _fit_family(scaling, dataset: str):
    families = {r["family"] for r in scaling.rows if r["dataset"] == dataset}
    return MIXED if MIXED in families else (sorted(families)[0] if families else None)


def _fit_rows(scaling, dataset: str) -> dict:
    family = _fit_family(scaling, dataset)
    return {r["metric"]: r for r in scaling.rows if r["dataset"] == dataset and r["family"] == family}


def _comparisons(scaling, dataset: str) -> dict:
    family = _fit_family(scaling, dataset)
    return {c["comparison"]: c for c in scaling.comparisons
            if c["dataset"] == dataset and c["family"] == family}


def _iv(lo, hi, digits=4) -> str:
    if lo is None or hi is None or not (math.isfinite(lo) and math.isfinite(hi)):
        return "no interval"
    return f"[{lo:+.{digits}f}, {hi:+.{digits}f}]"


def seed_verdict(sign_per_seed: list[int]) -> int:
    """+1 / -1 when every seed resolves the same sign, else 0 (not resolved)."""
    if sign_per_seed and all(v == sign_per_seed[0] for v in sign_per_seed) and sign_per_seed[0] != 0:
        return sign_per_seed[0]
    return 0


def _agree(signs: list[int]) -> int:
    """How many seeds resolve the same sign as seed 0 (0 if seed 0 does not resolve one)."""
    return sum(1 for v in signs if v == signs[0] and v != 0) if signs else 0


def _rung_changes(models: list[dict], level: float) -> list[dict]:
    """CE_{i+1} - CE_i per rung with its paired bootstrap interval (the two models' replicates
    share the document weights) and its sign where the interval excludes zero."""
    out = []
    for a, b in zip(models, models[1:]):
        d = b["ce"] - a["ce"]
        lo = hi = math.nan
        if a.get("replicates") and b.get("replicates"):
            lo, hi = percentile_interval(np.asarray(b["replicates"]["ce"]) - np.asarray(a["replicates"]["ce"]), level)
        sign = -1 if hi < 0 else (1 if lo > 0 else 0)
        out.append({"from": a["n"], "to": b["n"], "ce_from": a["ce"], "ce_to": b["ce"], "change": d,
                    "lo": lo, "hi": hi, "sign": sign})
    return out


def _slope_sign(row: dict) -> int:
    """-1 / +1 when both the OLS and the bootstrap interval of the slope exclude zero on that side."""
    ols = (row["slope_lo"], row["slope_hi"])
    boot = (row["boot_slope_lo"], row["boot_slope_hi"])
    if all(math.isfinite(v) for v in (*ols, *boot)):
        if ols[1] < 0 and boot[1] < 0:
            return -1
        if ols[0] > 0 and boot[0] > 0:
            return 1
    return 0


@dataclasses.dataclass(frozen=True)
class Finding:
    """One statement of "What it found", as data: which question (``kind``), the numbers it rests
    on (``values``: estimates, intervals as ``[lo, hi]``, per-seed agreement) and the verdict:
    +1 / -1 the sign resolved by every interval and every seed, 0 not resolved, None for a
    statement that reports numbers without a verdict. ``render`` turns it into one sentence."""

    kind: str  # one of KINDS
    dataset: str
    verdict: int | None
    values: dict


KINDS = ("r2", "slopes", "ee_tighter", "ee_slope_closest", "ce_rungs", "ee_share_trend", "sa_conf",
         "irreducible", "seeds")


def dataset_findings(dataset: str, models: list[dict], fits: dict, irreducible: dict | None,
                     comparisons: dict | None = None, seeds: list[dict] | None = None) -> dict:
    """The findings about one dataset (``models``: scaling rows sorted by N; ``seeds``: the same
    dataset's ``{models, fits, comparisons}`` of seeds 1.. of the ladder): ``findings`` (Finding
    records as dicts), their ``sentences`` (``render``) and a summary of the verdicts."""
    comparisons = comparisons or {}
    every = [{"models": models, "fits": fits, "comparisons": comparisons}] + list(seeds or [])
    K = len(every)
    n = [m["n"] for m in models]
    share = [m["ee_share"] for m in models]
    r2 = {k: fits[k]["r2"] for k in LAWS if k in fits}
    slope = {k: fits[k]["slope"] for k in (*LAWS, "ee_share") if k in fits}
    best = max(r2, key=r2.get)
    out = []

    def add(kind, verdict, **values):
        out.append(Finding(kind, dataset, verdict, values))

    add("r2", None, best=best, laws={
        k: {"r2": fits[k]["r2"], "boot": [fits[k]["boot_r2_lo"], fits[k]["boot_r2_hi"]],
            "loo": [fits[k]["loo_r2_min"], fits[k]["loo_r2_max"]]} for k in LAWS})
    add("slopes", None, abs_delta_ee_ce=abs(slope["ee"] - slope["ce"]), laws={
        k: {"slope": slope[k], "ols": [fits[k]["slope_lo"], fits[k]["slope_hi"]]} for k in LAWS})

    # EE's law tighter than CE's (the paper's central observation).
    key = "R^2(ee) - R^2(ce)"
    c = comparisons.get(key)
    signs = [e["comparisons"].get(key, {}).get("sign", 0) for e in every]
    v = seed_verdict(signs)
    if c is None:
        add("ee_tighter", None, compared=False)
        tighter = None
    else:
        add("ee_tighter", v, compared=True, estimate=c["estimate"], boot=[c["boot_lo"], c["boot_hi"]],
            loo=[c["loo_min"], c["loo_max"]], seeds=K, agree=_agree(signs),
            unresolved_because=None if v else (c["unresolved_because"] or "the seeds disagree"))
        tighter = {1: True, -1: False, 0: None}[v]

    # |Delta| smallest for EE: |Delta(EE)| - |Delta(M)| < 0 means EE's slope is closer to CE's.
    against = []
    for k in ("sa", "conf"):
        key = f"|Delta(ee)| - |Delta({k})|"
        if key not in comparisons:
            continue
        c = comparisons[key]
        signs = [e["comparisons"].get(key, {}).get("sign", 0) for e in every]
        against.append({"metric": k, "verdict": seed_verdict(signs), "estimate": c["estimate"],
                        "boot": [c["boot_lo"], c["boot_hi"]], "loo": [c["loo_min"], c["loo_max"]],
                        "agree": _agree(signs)})
    if against:
        add("ee_slope_closest", None, seeds=K, against=against)

    # CE at every rung.
    per_seed = [_rung_changes(e["models"], LEVEL) for e in every]
    rungs = per_seed[0]
    agreed = [seed_verdict([ps[i]["sign"] for ps in per_seed]) for i in range(len(rungs))]
    add("ce_rungs", -1 if all(v == -1 for v in agreed) else 0, seeds=K,
        first={"n": n[0], "ce": models[0]["ce"]}, last={"n": n[-1], "ce": models[-1]["ce"]},
        rungs=[{k: r[k] for k in ("from", "to", "change", "lo", "hi")} | {"verdict": v}
               for r, v in zip(rungs, agreed)])

    # EE's share with size.
    f = fits["ee_share"]
    signs = [_slope_sign(e["fits"]["ee_share"]) for e in every if "ee_share" in e["fits"]]
    v = seed_verdict(signs)
    add("ee_share_trend", v, slope=f["slope"], ols=[f["slope_lo"], f["slope_hi"]],
        boot=[f["boot_slope_lo"], f["boot_slope_hi"]], seeds=K, agree=_agree(signs),
        first=share[0], last=share[-1])
    share_trend = {-1: "falls", 1: "rises", 0: "unresolved"}[v]

    add("sa_conf", None, sa=[models[0]["sa"], models[-1]["sa"]],
        conf=[models[0]["conf"], models[-1]["conf"]])
    if irreducible and irreducible.get("fitted"):
        add("irreducible", None, fitted=True, alpha=irreducible["alpha"],
            loo_alpha=[irreducible["loo_alpha_min"], irreducible["loo_alpha_max"]], E=irreducible["E"],
            loo_E=[irreducible["loo_E_min"], irreducible["loo_E_max"]], r2=irreducible["r2"])
    elif irreducible:
        add("irreducible", None, fitted=False, reason=irreducible["reason"])
    spread = seed_spread(every) if K > 1 else None
    add("seeds", None, seeds=K, spread=None if spread is None else {
        **{k: {q: spread[k][q] for q in ("slope_mean", "slope_sd", "r2_mean", "r2_sd")} for k in ("ce", "ee")},
        "largest_ce_mean": spread["largest_ce_mean"], "largest_ce_sd": spread["largest_ce_sd"]})
    return {"dataset": dataset, "best_metric": best, "r2": r2, "slope": slope,
            "ce_rungs": [{k: r[k] for k in ("from", "to", "change", "lo", "hi")} | {"resolved_sign": v}
                         for r, v in zip(rungs, agreed)],
            "ee_share_trend": share_trend, "ee_share_first": share[0], "ee_share_last": share[-1],
            "ee_tighter_than_ce": tighter, "seeds": K, "seed_spread": spread,
            "findings": [dataclasses.asdict(f) for f in out], "sentences": [render(f) for f in out]}


def render(f: Finding) -> str:
    """The English sentence of one finding (the only place findings become words)."""
    x, ds = f.values, f.dataset

    def seeds_note():
        return "" if x["seeds"] == 1 else f"; resolved the same way in {x['agree']} of {x['seeds']} seeds"

    def rung(r):
        return f"N = {r['from']:,} -> {r['to']:,}"

    if f.kind == "r2":
        laws = "; ".join(f"{NAMES[k]} {v['r2']:.4f} (boot {_iv(*v['boot'])}, LOO {_iv(*v['loo'])})"
                         for k, v in x["laws"].items())
        return f"On {ds}, R^2 of the power laws ({PCT} intervals): {laws}; the highest is {NAMES[x['best']]}'s."
    if f.kind == "slopes":
        laws = ", ".join(f"{NAMES[k]} {v['slope']:+.4f} +- {v['ols'][1] - v['slope']:.4f}"
                         if math.isfinite(v["ols"][1]) else f"{NAMES[k]} {v['slope']:+.4f}"
                         for k, v in x["laws"].items())
        return (f"Fitted slopes alpha of log|M| against log N, +- the OLS half-width: {laws}; "
                f"|Delta| of EE vs CE = {x['abs_delta_ee_ce']:.4f}.")
    if f.kind == "ee_tighter":
        if not x["compared"]:
            return "EE's and CE's laws were not compared (a metric was not fitted)."
        nums = (f"R^2(EE) - R^2(CE) = {x['estimate']:+.4f}, {PCT} paired bootstrap {_iv(*x['boot'])}, "
                f"leave-one-model-out {_iv(*x['loo'])}{seeds_note()}")
        if f.verdict > 0:
            return f"EE's law is tighter than CE's on {ds}, as the paper reports: {nums}."
        if f.verdict < 0:
            return f"CE's law is tighter than EE's on {ds}, unlike the paper: {nums}."
        return (f"The data do not resolve whether EE's law is tighter than CE's on {ds} "
                f"({x['unresolved_because']}): {nums}.")
    if f.kind == "ee_slope_closest":
        parts = []
        for a in x["against"]:
            name = NAMES[a["metric"]]
            state = {-1: f"closer to CE's than {name}'s", 1: f"farther from CE's than {name}'s",
                     0: f"not resolved against {name}'s"}[a["verdict"]]
            note = "" if x["seeds"] == 1 else f"; resolved the same way in {a['agree']} of {x['seeds']} seeds"
            parts.append(f"{state} ({a['estimate']:+.4f}, boot {_iv(*a['boot'])}, LOO {_iv(*a['loo'])}{note})")
        return "EE's slope is " + "; ".join(parts) + "."
    if f.kind == "ce_rungs":
        detail = "; ".join(f"{rung(r)}: {r['change']:+.4f} {_iv(r['lo'], r['hi'])}" for r in x["rungs"])
        if f.verdict == -1:
            return (f"CE falls at every rung of the ladder, from {x['first']['ce']:.4f} (N = {x['first']['n']:,}) "
                    f"to {x['last']['ce']:.4f} (N = {x['last']['n']:,}); every paired {PCT} interval of the "
                    f"change lies below zero{' in every seed' if x['seeds'] > 1 else ''}: {detail}.")
        rises = [rung(r) for r in x["rungs"] if r["verdict"] == 1]
        open_ = [rung(r) for r in x["rungs"] if r["verdict"] == 0]
        parts = ([f"CE rises (resolved) at {', '.join(rises)}"] if rises else []) + (
            [f"the data do not resolve whether CE falls at {', '.join(open_)}"] if open_ else [])
        return (f"CE does not fall at every rung with resolved intervals: {'; '.join(parts)}. "
                f"Changes with paired {PCT} intervals: {detail}.")
    if f.kind == "ee_share_trend":
        nums = (f"log-log slope {x['slope']:+.4f}, OLS {_iv(*x['ols'])}, boot {_iv(*x['boot'])}{seeds_note()}; "
                f"{x['first']:.3f} for the smallest model, {x['last']:.3f} for the largest")
        if f.verdict < 0:
            return f"EE's share of CE falls with size ({nums})."
        if f.verdict > 0:
            return f"EE's share of CE rises with size ({nums})."
        return f"The data do not resolve whether EE's share of CE falls with size ({nums})."
    if f.kind == "sa_conf":
        return (f"SA goes from {x['sa'][0]:.4f} to {x['sa'][1]:.4f} and Conf from {x['conf'][0]:.4f} to "
                f"{x['conf'][1]:.4f} between the smallest and the largest model.")
    if f.kind == "irreducible":
        if not x["fitted"]:
            return f"CE = A N^-alpha + E was not fitted: {x['reason']}."
        return (f"With an irreducible term, CE = A N^-alpha + E fits with alpha = {x['alpha']:.4f} "
                f"(LOO {_iv(*x['loo_alpha'])}), E = {x['E']:.4f} (LOO {_iv(*x['loo_E'])}), "
                f"R^2 = {x['r2']:.4f}.")
    if f.kind == "seeds":
        sp = x["spread"]
        if sp is None:
            return ("One training run per rung (--seeds 1): the seed-to-seed spread is not measured here; "
                    "`rce-jax demo --seeds K` measures it.")
        return (f"Across {x['seeds']} seeds (initialisation and data order), "
                + "; ".join(f"alpha({NAMES[k]}) {sp[k]['slope_mean']:+.4f} +- {sp[k]['slope_sd']:.4f} "
                            f"(sd), R^2({NAMES[k]}) {sp[k]['r2_mean']:.4f} +- {sp[k]['r2_sd']:.4f}"
                            for k in ("ce", "ee"))
                + f"; CE of the largest model {sp['largest_ce_mean']:.4f} +- {sp['largest_ce_sd']:.4f}.")
    raise ValueError(f"unknown finding kind {f.kind!r}; one of {KINDS}")


def seed_spread(every: list[dict]) -> dict:
    """Mean and sd over seeds of each law's alpha and R^2, and of the largest model's CE."""
    out = {}
    for k in (*LAWS, "ee_share"):
        sl = [e["fits"][k]["slope"] for e in every if k in e["fits"]]
        r2 = [e["fits"][k]["r2"] for e in every if k in e["fits"]]
        out[k] = {"slope_mean": float(np.mean(sl)), "slope_sd": float(np.std(sl, ddof=1)) if len(sl) > 1 else math.nan,
                  "slope_min": float(min(sl)), "slope_max": float(max(sl)),
                  "r2_mean": float(np.mean(r2)), "r2_sd": float(np.std(r2, ddof=1)) if len(r2) > 1 else math.nan,
                  "r2_min": float(min(r2)), "r2_max": float(max(r2))}
    ce = [e["models"][-1]["ce"] for e in every]
    out["largest_ce_mean"] = float(np.mean(ce))
    out["largest_ce_sd"] = float(np.std(ce, ddof=1)) if len(ce) > 1 else math.nan
    return out


def _recipe_lines(spec) -> list[str]:
    r = spec.recipe
    o = r.optim
    tok = (f"byte-level BPE, {r.tokenizer.vocab_size} entries (with `<s>`/`</s>`), trained with `tokenizers` "
           f"on {', '.join(r.tokenizer.corpora or r.data.train)}" if r.tokenizer.path is None
           else f"`{r.tokenizer.path}`")
    loss = "cross-entropy" if r.loss.lam == 0 else f"proxy loss CE + {r.loss.lam} Conf"
    return [
        f"- data: {', '.join(r.data.train)}; documents as `<s>` text `</s>`, packed into rows of "
        f"{r.context_length} tokens with attention kept inside each document",
        f"- tokenizer: {tok}",
        f"- every model: {r.steps} steps x {r.batch_size} rows x {r.context_length} tokens = "
        f"{r.steps * r.batch_size * r.context_length:,} training tokens, same batches in the same order (seed {r.seed})",
        f"- loss: {loss}; AdamW (b1 {o.b1}, b2 {o.b2}, eps {o.eps}, weight decay {o.weight_decay} on matrices), "
        + (f"peak lr {o.lr} for every size" if o.lr_ref_width is None else
           f"peak lr {o.lr} x {o.lr_ref_width} / width (one rule for every size)")
        + f", linear warmup {o.warmup(r.steps)} steps, cosine to {o.min_lr_ratio} x peak, "
        f"gradient clipping at global norm {o.clip_norm}",
        f"- architecture: Llama-style (RMSNorm, SwiGLU, RoPE, tied embeddings, no biases), "
        f"{r.dtype} compute, {r.param_dtype} parameters",
        f"- evaluation: `rce-jax eval` defaults (lm-evaluation-harness rolling windows of {r.context_length} "
        f"tokens, ranks over the whole head) on {', '.join(r.data.eval)}"
        + (f", each cut at {spec.eval_max_tokens:,} scored tokens (whole documents)" if spec.eval_max_tokens else ""),
    ]


def build_report(spec, summaries: dict, records: list, scaling, *, figures, out_dir, wall_s: float,
                 timings: dict, command: str = "", title: str | None = None,
                 seed_scalings: list | None = None) -> dict:
    """Write ``report.md`` and ``report.json`` into ``out_dir``; return the JSON dict.
    ``seed_scalings``: the ScalingReports of seeds 1.. of the ladder (none: one seed)."""
    out = Path(out_dir)
    seed_scalings = list(seed_scalings or [])
    datasets = sorted({r["dataset"] for r in records})

    def by_size(sc, ds):
        return sorted((m for m in sc.models if m["dataset"] == ds), key=lambda m: m["n"])

    findings = []
    for ds in datasets:
        models = by_size(scaling, ds)
        fits = _fit_rows(scaling, ds)
        irr = next((r for r in scaling.irreducible if r["dataset"] == ds and r["family"] in
                    {f["family"] for f in fits.values()}), None)
        seeds = [{"models": by_size(sc, ds), "fits": _fit_rows(sc, ds), "comparisons": _comparisons(sc, ds)}
                 for sc in seed_scalings]
        if fits:
            findings.append(dataset_findings(ds, models, fits, irr, _comparisons(scaling, ds), seeds))
    title = title or f"rce-jax {spec.name}: {len(spec.presets)} models, one recipe"
    model_rows = []
    for p in spec.presets:
        s = summaries[p]
        model_rows.append({"model": p, "hidden_size": s["hidden_size"], "num_layers": s["num_layers"],
                           "num_heads": s["num_heads"], "n_params": s["n_params"],
                           "n_params_non_embedding": s["n_params_non_embedding"],
                           "tokens_trained": s["tokens_trained"], "peak_lr": s.get("peak_lr"),
                           "final_train_loss": (s.get("final_train") or {}).get("loss"),
                           "train_time_s": timings.get(f"train {p}")})
    n_ne = [m["n_params_non_embedding"] for m in model_rows]
    L = ["# " + title, ""]
    L.append(f"{len(spec.presets)} Llama-style models from {min(n_ne):,} to {max(n_ne):,} non-embedding "
             f"parameters ({np.log10(max(n_ne) / min(n_ne)):.2f} decades), trained with one recipe on the "
             f"same tokens, each evaluated on held-out prose and code through the `rce-jax eval` pipeline, "
             f"and the rank-based decomposition CE = EE + SA - Conf fitted against size. "
             f"Each rung was trained {spec.seeds} time(s) (--seeds {spec.seeds}); intervals are {PCT}. "
             f"This invocation took {wall_s:.0f} s of wall time and {timings.get('cpu_s', math.nan):.0f} s "
             "of CPU time (user + sys).")
    L += ["", "## What it found", ""] + [f"- {s}" for f in findings for s in f["sentences"]]
    L += ["", "## Recipe", ""] + _recipe_lines(spec)
    L += ["", "## The ladder", "",
          "| model | width | layers | heads | non-embedding params | total params | training tokens | "
          "tokens / param | peak lr | final train loss | train time (s) |",
          "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for m in model_rows:
        t = "skipped (trained before)" if m["train_time_s"] is None else f"{m['train_time_s']:.0f}"
        loss = "-" if m["final_train_loss"] is None else f"{m['final_train_loss']:.4f}"
        L.append(f"| {m['model']} | {m['hidden_size']} | {m['num_layers']} | {m['num_heads']} | "
                 f"{m['n_params_non_embedding']:,} | {m['n_params']:,} | {m['tokens_trained']:,} | "
                 f"{m['tokens_trained'] / m['n_params_non_embedding']:.1f} | {m['peak_lr']:.3g} | {loss} | {t} |")
    L += ["", "## Held-out decomposition", ""]
    for ds in datasets:
        rows = sorted((r for r in records if r["dataset"] == ds), key=lambda r: r["n_params_non_embedding"])
        iv0 = rows[0].get("intervals") or {}
        docs = rows[0].get("n_documents")
        boot = (f"; in brackets the {PCT} interval over {iv0['replicates']} document-bootstrap replicates"
                if iv0 else "; no bootstrap intervals (evaluated with --bootstrap 0)")
        if iv0 and docs is not None and docs < FEW_DOCUMENTS:
            boot += (f"; only {docs} documents, so these intervals rest on very few resampling units and "
                     f"{iv0.get('n_degenerate_replicates', 0)} replicates drew no document at all: read them "
                     "as rough")
        seed_ce = {}
        for sc in seed_scalings:
            for m in sc.models:
                if m["dataset"] == ds:
                    seed_ce.setdefault(m["model"], []).append(m["ce"])
        sd_col = bool(seed_ce)
        L += [f"**{ds}** ({rows[0]['n_tokens']:,} scored tokens in {docs} documents{boot})", "",
              "| model | N (non-embedding) | CE | EE | SA | Conf | EE/CE | top-1 | bits/byte |"
              + (" CE sd over seeds |" if sd_col else ""),
              "|---|---:|---:|---:|---:|---:|---:|---:|---:|" + ("---:|" if sd_col else "")]
        for r in rows:
            iv = r.get("intervals") or {}
            cell = {k: f"{r[k]:.4f}" + (f" [{iv[k]['lo']:.4f}, {iv[k]['hi']:.4f}]" if k in iv else "")
                    for k in ("ce", "ee", "sa", "conf", "ee_share")}
            line = (f"| {r['model']} | {r['n_params_non_embedding']:,} | {cell['ce']} | {cell['ee']} | "
                    f"{cell['sa']} | {cell['conf']} | {cell['ee_share']} | {r['top1']:.4f} | "
                    f"{r['bits_per_byte']:.4f} |")
            if sd_col:
                ces = [r["ce"], *seed_ce.get(r["model"], [])]
                line += f" {np.std(ces, ddof=1):.4f} ({len(ces)} seeds) |"
            L.append(line)
        L.append("")
    L += ["## Scaling fits", "", f"log|M| = c + alpha log N by least squares, N = {scaling.n_description}. "
          f"{PCT} intervals: OLS (t-interval from the models' scatter about the line), LOO (range over the "
          "fits leaving one model out), boot (document bootstrap, paired across models and metrics).", "",
          "| dataset | metric | models | alpha +- se | alpha OLS | alpha LOO | alpha boot | R^2 | R^2 LOO | "
          "R^2 boot | abs(Delta) vs CE |", "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for ds in datasets:
        for k, r in _fit_rows(scaling, ds).items():
            L.append(f"| {ds} | {NAMES[k]} | {r['n_points']} | {r['slope']:+.4f} +- {r['slope_se']:.4f} | "
                     f"{_iv(r['slope_lo'], r['slope_hi'])} | {_iv(r['loo_slope_min'], r['loo_slope_max'])} | "
                     f"{_iv(r['boot_slope_lo'], r['boot_slope_hi'])} | {r['r2']:.4f} | "
                     f"{_iv(r['loo_r2_min'], r['loo_r2_max'])} | {_iv(r['boot_r2_lo'], r['boot_r2_hi'])} | "
                     f"{r['abs_delta_vs_ce']:.4f} |")
    L += ["", "Paired comparisons (resolved: the bootstrap interval excludes 0 and every leave-one-model-out "
          "fit has the same sign):", "", f"| dataset | comparison | estimate | {PCT} boot | LOO range | verdict |",
          "|---|---|---:|---:|---:|---|"]
    for ds in datasets:
        for name, c in _comparisons(scaling, ds).items():
            verdict = "resolved" if c["resolved"] else f"not resolved ({c['unresolved_because']})"
            L.append(f"| {ds} | {name} | {c['estimate']:+.4f} | {_iv(c['boot_lo'], c['boot_hi'])} | "
                     f"{_iv(c['loo_min'], c['loo_max'])} | {verdict} |")
    if seed_scalings:
        L += ["", f"Seed-to-seed spread over {spec.seeds} seeds (mean +- sd [min, max]):", "",
              "| dataset | metric | alpha | R^2 |", "|---|---|---:|---:|"]
        for f in findings:
            for k in (*LAWS, "ee_share"):
                sp = f["seed_spread"][k]
                L.append(f"| {f['dataset']} | {NAMES[k]} | {sp['slope_mean']:+.4f} +- {sp['slope_sd']:.4f} "
                         f"[{sp['slope_min']:+.4f}, {sp['slope_max']:+.4f}] | {sp['r2_mean']:.4f} +- "
                         f"{sp['r2_sd']:.4f} [{sp['r2_min']:.4f}, {sp['r2_max']:.4f}] |")
    L += ["", "## Figures", ""]
    rel = [Path(os.path.relpath(p, out)) for p in figures]
    for p in rel:
        L += [f"![{p.stem}]({p.as_posix()})", ""]
    L += ["## Files", "",
          "- `results/`: one `rce-jax eval` result JSON per model and corpus "
          f"(`rce-jax scaling {out / 'results'} --out DIR` refits them)",
          "- `scaling.md`, `scaling.csv`, `scaling.json`: every fit; `report.json`: this report's numbers",
          "- `runs/<model>/`: config, metrics.jsonl, checkpoints and the Hugging Face export (`model/`)", ""]
    if command:
        L += ["Reproduce with:", "", f"    {command}", ""]
    report = {"title": title, "command": command, "wall_s": wall_s, "cpu_s": timings.get("cpu_s"),
              "seeds": spec.seeds, "timings": timings,
              "recipe": spec.to_dict(), "models": model_rows,
              "results": [{k: r[k] for k in ("model", "dataset", "n_params", "n_params_non_embedding", "n_tokens",
                                             "ce", "ee", "sa", "conf", "ee_share", "top1", "bits_per_byte")}
                          | {"intervals": {k: v for k, v in (r.get("intervals") or {}).items()
                                           if k != "replicates_values"}}
                          for r in records],
              "fits": scaling.rows, "comparisons": scaling.comparisons, "irreducible": scaling.irreducible,
              "seed_fits": [sc.rows for sc in seed_scalings], "findings": findings,
              "figures": [p.as_posix() for p in rel]}
    write_text(out / "report.md", "\n".join(L))
    write_json(out / "report.json", report)
    return report
