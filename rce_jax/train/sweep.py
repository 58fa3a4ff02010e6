"""What the proxy loss L = CE + lam * Conf does to held-out CE, EE, SA and Conf, at fixed compute.

    python experiments/lambda_sweep.py --out out/lambda_sweep            # CPU, 4 min 19 s a seed measured (2 seeds by default)
    python experiments/lambda_sweep.py --tiny --out out/lambda_sweep_tiny  # CPU smoke test, 36.7 s measured
    python -m rce_jax.train.sweep --tiny --out out/lambda_sweep_tiny      # the same as the script

One model (same architecture, tokens, schedule) is trained once per lam in ``--lams`` and per seed
in ``--seeds`` (seed s changes the initialisation and the data order; for a given seed every lam
starts from the same initialisation and sees the same batches, so lam and lam = 0 pair by seed);
only the loss differs, and the proxy loss costs what CE costs, so compute is fixed. Each trained
model is evaluated through ``rce_jax.evaluate.evaluate`` (the `rce-jax eval` path, with its
document bootstrap) on the held-out prose and code.

A change against lam = 0 is stated as a finding only when, in every seed, the paired bootstrap
interval of (metric at lam) - (metric at lam = 0) (same documents, same seed) excludes zero on the
same side; otherwise the table says it is not resolved. Writes ``sweep.json``, ``sweep.md``
(tables) and ``lambda_sweep.png``/``.pdf`` (CE, EE, SA, Conf against lam, mean over seeds with
the seeds' range, one line per corpus).
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

import numpy as np

from ..bootstrap import percentile_interval
from ..cli import run_script
from ..evaluate import EvalConfig, evaluate
from ..io import check_output_dir, write_json, write_text
from ..style import METRIC_LABELS, display_name, figure, legend_outside, save
from .config import ModelSection
from .demo import DEMO, QUICK
from .loop import train
from .report import seed_verdict

KEYS = ("ce", "ee", "sa", "conf")
NAMES = {"ce": "CE", "ee": "EE", "sa": "SA", "conf": "Conf"}


def parse(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", default="out/lambda_sweep")
    p.add_argument("--lams", default="0,0.1,0.3,0.5,0.7")
    p.add_argument("--seeds", type=int, default=2, help="training seeds per lam (default 2)")
    p.add_argument("--tiny", action="store_true", help="the quick demo's recipe and a tiny model")
    p.add_argument("--preset", help="model preset (default: demo-5, or quick-3 with --tiny)")
    p.add_argument("--steps", type=int, help="override the recipe's steps")
    p.add_argument("--no-progress", action="store_true")
    args = p.parse_args(argv)
    if args.seeds < 1:
        p.error(f"--seeds must be at least 1, got {args.seeds}")
    check_output_dir(args.out, "--out")  # before any work
    return args


def paired_changes(rows: list[dict], reps: dict, seeds: int, level: float = 0.95) -> list[dict]:
    """Per (lam != 0, dataset, metric): the mean change against lam = 0 over seeds, the seeds'
    range, each seed's paired bootstrap interval, and whether every seed resolves the same sign."""
    out = []
    lams = sorted({r["lam"] for r in rows})
    if 0.0 not in lams:
        return out
    for lam in lams:
        if lam == 0.0:
            continue
        for ds in sorted({r["dataset"] for r in rows}):
            for k in KEYS:
                changes, intervals, signs = [], [], []
                for s in range(seeds):
                    a, b = reps.get((0.0, s, ds)), reps.get((lam, s, ds))
                    base = next(r for r in rows if r["lam"] == 0.0 and r["seed_index"] == s and r["dataset"] == ds)
                    new = next(r for r in rows if r["lam"] == lam and r["seed_index"] == s and r["dataset"] == ds)
                    changes.append(new[k] - base[k])
                    lo, hi = (percentile_interval(np.asarray(b[k], float) - np.asarray(a[k], float), level)
                              if a and b else (float("nan"), float("nan")))
                    intervals.append([lo, hi])
                    signs.append(-1 if hi < 0 else (1 if lo > 0 else 0))
                out.append({"lam": lam, "dataset": ds, "metric": k, "mean_change": float(np.mean(changes)),
                            "seed_min": float(min(changes)), "seed_max": float(max(changes)),
                            "seed_sd": float(np.std(changes, ddof=1)) if seeds > 1 else None,
                            "boot_intervals": intervals, "resolved_sign": seed_verdict(signs)})
    return out


def _replicates(rec):
    iv = rec.get("intervals") or {}
    v = iv.get("replicates_values")
    return {k: [np.nan if x is None else x for x in v[k]] for k in KEYS} if v else None


def main(argv=None):
    args = parse(argv)
    lams = [float(x) for x in args.lams.split(",")]
    ladder = QUICK if args.tiny else DEMO
    base = ladder.recipe.replace(model=ModelSection(preset=args.preset or ("quick-3" if args.tiny else "demo-5")))
    if args.steps:
        base = base.replace(steps=args.steps, optim=dataclasses.replace(
            base.optim, warmup_steps=min(base.optim.warmup(base.steps), args.steps // 10)))
    out = Path(args.out)
    eval_config = EvalConfig(context_length=base.context_length, batch_size=ladder.eval_batch_size,
                             max_tokens=ladder.eval_max_tokens, text_field=base.data.text_field)
    rows, reps = [], {}
    for s in range(args.seeds):
        for lam in lams:
            name = f"lam{lam:g}" if s == 0 else f"lam{lam:g}_seed{s}"
            # Only lam changes within a seed; the seed changes initialisation and data order.
            config = base.replace(seed=base.seed + s, loss=dataclasses.replace(base.loss, lam=lam))
            result = train(config, out / "runs" / name, progress=not args.no_progress, figures=False)
            last = result.summary["final_train"]
            for spec in base.data.eval:
                rec = evaluate(result.model_dir, spec, out / "results", eval_config, model_name=name,
                               progress=not args.no_progress, cache_dir=base.data.cache_dir)
                rows.append({"lam": lam, "seed": base.seed + s, "seed_index": s, "dataset": rec["dataset"],
                             "n_tokens": rec["n_tokens"], **{k: rec[k] for k in (*KEYS, "ee_share", "top1")},
                             "intervals": {k: rec["intervals"][k] for k in KEYS} if rec.get("intervals") else None,
                             "final_train_ce": last["ce"], "final_train_conf": last["conf"]})
                reps[(lam, s, rec["dataset"])] = _replicates(rec)
    changes = paired_changes(rows, reps, args.seeds)
    summary = {"model": base.model.preset, "n_params_non_embedding": result.summary["n_params_non_embedding"],
               "steps": base.steps, "tokens_per_run": result.summary["tokens_trained"], "lams": lams,
               "seeds": args.seeds, "recipe": base.to_dict(), "rows": rows, "changes_vs_lam0": changes}
    write_json(out / "sweep.json", summary)
    lines = [f"# Proxy-loss sweep: {base.model.preset} "
             f"({result.summary['n_params_non_embedding']:,} non-embedding parameters), "
             f"{result.summary['tokens_trained']:,} tokens per run, {args.seeds} seed(s) per lam", "",
             "Per run (in brackets the 95% document-bootstrap interval):", "",
             "| lam | seed | dataset | CE | EE | SA | Conf | EE/CE | top-1 | train CE (last step) | train Conf |",
             "|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        cell = {k: f"{r[k]:.4f}" + (f" [{r['intervals'][k]['lo']:.4f}, {r['intervals'][k]['hi']:.4f}]"
                                    if r["intervals"] else "") for k in KEYS}
        lines.append(f"| {r['lam']:g} | {r['seed']} | {r['dataset']} | {cell['ce']} | {cell['ee']} | {cell['sa']} | "
                     f"{cell['conf']} | {r['ee_share']:.4f} | {r['top1']:.4f} | {r['final_train_ce']:.4f} | "
                     f"{r['final_train_conf']:.4f} |")
    if changes:
        lines += ["", "Change against lam = 0, paired by seed (same initialisation and batches) and by document "
                  "(same bootstrap weights). Resolved: every seed's 95% interval excludes zero on the same side.", "",
                  "| lam | dataset | metric | mean change | seeds' range | per-seed 95% intervals | verdict |",
                  "|---:|---|---|---:|---:|---|---|"]
        for c in changes:
            ivs = "; ".join(f"[{lo:+.4f}, {hi:+.4f}]" for lo, hi in c["boot_intervals"])
            verdict = {-1: "lowers it (resolved)", 1: "raises it (resolved)", 0: "not resolved"}[c["resolved_sign"]]
            lines.append(f"| {c['lam']:g} | {c['dataset']} | {NAMES[c['metric']]} | {c['mean_change']:+.4f} | "
                         f"[{c['seed_min']:+.4f}, {c['seed_max']:+.4f}] | {ivs} | {verdict} |")
    write_text(out / "sweep.md", "\n".join(lines) + "\n")
    fig, axes = figure(1, 4, panel=(2.5, 2.3))
    for ax, key in zip(axes[0], KEYS):
        for ds in sorted({r["dataset"] for r in rows}):
            mean, lo, hi = [], [], []
            for lam in lams:
                v = [r[key] for r in rows if r["lam"] == lam and r["dataset"] == ds]
                mean.append(np.mean(v))
                lo.append(np.mean(v) - min(v))
                hi.append(max(v) - np.mean(v))
            ax.errorbar(lams, mean, yerr=[lo, hi], marker="o", ms=3, capsize=2, label=display_name(ds))
        ax.set_xlabel(r"proxy-loss weight $\lambda$")
        ax.set_ylabel(METRIC_LABELS[key] if key != "conf" else "confidence Conf (nats)")
        ax.set_title(NAMES[key])
    legend_outside(fig, axes[0, -1], title="held-out corpus")
    fig.suptitle(f"held-out decomposition against the proxy-loss weight ({base.model.preset}, fixed compute; "
                 f"mean over {args.seeds} seed(s), bars: the seeds' range)", fontsize=9)
    save(fig, out / "lambda_sweep.png")
    print("\n".join(lines))
    return summary


if __name__ == "__main__":
    run_script("python -m rce_jax.train.sweep", main)
