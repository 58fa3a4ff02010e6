"""``report.md`` (and ``report.json``) of a ladder: recipe, tables, figures and what was found.

Every sentence under "What it found" is computed from the results and the fits: which metric
follows a power law most closely (R^2), the slopes, whether CE falls at every rung, whether
EE's share of CE falls with size, whether the paper's observation (EE's law tighter than CE's)
holds here. Nothing is written in advance; a different outcome gives different sentences.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..io import write_json, write_text
from ..scaling import MIXED

NAMES = {"ce": "CE", "ee": "EE", "sa": "SA", "conf": "Conf", "ee_share": "EE/CE"}
LAWS = ("ce", "ee", "sa", "conf")


def _fit_rows(scaling, dataset: str) -> dict:
    rows = [r for r in scaling.rows if r["dataset"] == dataset]
    families = {r["family"] for r in rows}
    family = MIXED if MIXED in families else (families.pop() if families else None)
    return {r["metric"]: r for r in rows if r["family"] == family}


def _monotone(values) -> str:
    d = np.diff(np.asarray(values, float))
    if (d < 0).all():
        return "falls"
    if (d > 0).all():
        return "rises"
    return "mixed"


def dataset_findings(dataset: str, models: list[dict], fits: dict, irreducible: dict | None) -> dict:
    """Computed statements about one dataset (``models``: scaling rows sorted by N)."""
    n = [m["n"] for m in models]
    ce = [m["ce"] for m in models]
    share = [m["ee_share"] for m in models]
    r2 = {k: fits[k]["r2"] for k in LAWS if k in fits}
    slope = {k: fits[k]["slope"] for k in (*LAWS, "ee_share") if k in fits}
    best = max(r2, key=r2.get)
    ce_trend = _monotone(ce)
    share_trend = _monotone(share)
    s = []
    s.append(f"On {dataset}, {NAMES[best]} follows a power law in N most closely (R^2 = {r2[best]:.4f}); "
             + ", ".join(f"{NAMES[k]} R^2 = {r2[k]:.4f}" for k in LAWS if k != best) + ".")
    s.append("Fitted slopes of log|M| against log N: "
             + ", ".join(f"{NAMES[k]} {slope[k]:+.4f}" for k in LAWS)
             + f"; EE's slope differs from CE's by |Delta| = {abs(slope['ee'] - slope['ce']):.4f}.")
    if ce_trend == "falls":
        s.append(f"CE falls at every rung of the ladder, from {ce[0]:.4f} (N = {n[0]:,}) to "
                 f"{ce[-1]:.4f} (N = {n[-1]:,}).")
    else:
        ups = [f"N = {n[i]:,} -> {n[i + 1]:,} ({ce[i]:.4f} -> {ce[i + 1]:.4f})"
               for i in range(len(n) - 1) if ce[i + 1] >= ce[i]]
        s.append(f"CE does not fall at every rung: it does not decrease at {'; '.join(ups)}; overall it goes "
                 f"from {ce[0]:.4f} (N = {n[0]:,}) to {ce[-1]:.4f} (N = {n[-1]:,}).")
    direction = "falls" if slope["ee_share"] < 0 else "rises"
    how = "at every rung" if share_trend == direction else "though not at every rung"
    s.append(f"EE's share of CE {direction} with size (log-log slope {slope['ee_share']:+.4f}), {how}: "
             f"{share[0]:.3f} for the smallest model, {share[-1]:.3f} for the largest.")
    holds = r2.get("ee", -np.inf) > r2.get("ce", -np.inf)
    s.append(f"The paper reports that EE follows a power law more closely than CE; on this ladder that "
             f"{'holds' if holds else 'does not hold'} for {dataset} (R^2 {r2['ee']:.4f} vs {r2['ce']:.4f}).")
    sa, conf = [m["sa"] for m in models], [m["conf"] for m in models]
    s.append(f"SA goes from {sa[0]:.4f} to {sa[-1]:.4f} and Conf from {conf[0]:.4f} to {conf[-1]:.4f} "
             f"between the smallest and the largest model.")
    if irreducible:
        s.append(f"With an irreducible term, CE = A N^-alpha + E fits with alpha = {irreducible['alpha']:.4f}, "
                 f"E = {irreducible['E']:.4f} (R^2 = {irreducible['r2']:.4f}).")
    return {"dataset": dataset, "best_metric": best, "r2": r2, "slope": slope, "ce_trend": ce_trend,
            "ee_share_trend": share_trend, "ee_share_first": share[0], "ee_share_last": share[-1],
            "ee_tighter_than_ce": bool(holds), "sentences": s}


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
                 timings: dict, command: str = "", title: str | None = None) -> dict:
    """Write ``report.md`` and ``report.json`` into ``out_dir``; return the JSON dict."""
    out = Path(out_dir)
    datasets = sorted({r["dataset"] for r in records})
    findings = []
    for ds in datasets:
        models = sorted((m for m in scaling.models if m["dataset"] == ds), key=lambda m: m["n"])
        fits = _fit_rows(scaling, ds)
        irr = next((r for r in scaling.irreducible if r["dataset"] == ds and r["family"] in
                    {f["family"] for f in fits.values()}), None)
        if fits:
            findings.append(dataset_findings(ds, models, fits, irr))
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
             f"This invocation took {wall_s:.0f} s of wall time.")
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
        L += [f"**{ds}** ({rows[0]['n_tokens']:,} scored tokens)", "",
              "| model | N (non-embedding) | CE | EE | SA | Conf | EE/CE | top-1 | bits/byte |",
              "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
        for r in rows:
            L.append(f"| {r['model']} | {r['n_params_non_embedding']:,} | {r['ce']:.4f} | {r['ee']:.4f} | "
                     f"{r['sa']:.4f} | {r['conf']:.4f} | {r['ee_share']:.4f} | {r['top1']:.4f} | "
                     f"{r['bits_per_byte']:.4f} |")
        L.append("")
    L += ["## Scaling fits", "", f"log|M| = c + alpha log N by least squares, N = {scaling.n_description}.", "",
          "| dataset | metric | models | alpha | R^2 | abs(Delta) vs CE |", "|---|---|---:|---:|---:|---:|"]
    for ds in datasets:
        for k, r in _fit_rows(scaling, ds).items():
            L.append(f"| {ds} | {NAMES[k]} | {r['n_points']} | {r['slope']:+.4f} | {r['r2']:.4f} | "
                     f"{r['abs_delta_vs_ce']:.4f} |")
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
    report = {"title": title, "command": command, "wall_s": wall_s, "timings": timings,
              "recipe": spec.to_dict(), "models": model_rows,
              "results": [{k: r[k] for k in ("model", "dataset", "n_params", "n_params_non_embedding", "n_tokens",
                                             "ce", "ee", "sa", "conf", "ee_share", "top1", "bits_per_byte")}
                          for r in records],
              "fits": scaling.rows, "irreducible": scaling.irreducible, "findings": findings,
              "figures": [p.as_posix() for p in rel]}
    write_text(out / "report.md", "\n".join(L))
    write_json(out / "report.json", report)
    return report
