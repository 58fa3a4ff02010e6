"""What the proxy loss L = CE + lam * Conf does to held-out CE, EE, SA and Conf, at fixed compute.

    python experiments/lambda_sweep.py --out out/lambda_sweep            # CPU, a few minutes
    python experiments/lambda_sweep.py --tiny --out out/lambda_sweep_tiny  # CPU smoke test, ~1 min

One model (same architecture, initialisation, data order, tokens, schedule) is trained once per
lam in ``--lams``; only the loss differs, and the proxy loss costs what CE costs, so compute is
fixed. Each trained model is evaluated through ``rce_jax.evaluate.evaluate`` (the `rce-jax eval`
path) on the held-out prose and code. Writes ``sweep.json``, ``sweep.md`` (table) and
``lambda_sweep.png`` (CE, EE, SA, Conf against lam, one line per corpus).
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

sys.path[:0] = [str(Path(__file__).resolve().parents[1]), str(Path(__file__).resolve().parents[1] / "kernels")]

import matplotlib  # noqa: E402

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from rce_jax.cli import run_script  # noqa: E402
from rce_jax.io import check_output_dir  # noqa: E402
from rce_jax.evaluate import EvalConfig, evaluate  # noqa: E402
from rce_jax.io import write_json, write_text  # noqa: E402
from rce_jax.plots import save  # noqa: E402
from rce_jax.train import train  # noqa: E402
from rce_jax.train.config import ModelSection  # noqa: E402
from rce_jax.train.demo import DEMO, QUICK  # noqa: E402

KEYS = ("ce", "ee", "sa", "conf")


def parse(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", default="out/lambda_sweep")
    p.add_argument("--lams", default="0,0.1,0.3,0.5,0.7")
    p.add_argument("--tiny", action="store_true", help="the quick demo's recipe and a tiny model")
    p.add_argument("--preset", help="model preset (default: demo-5, or quick-3 with --tiny)")
    p.add_argument("--steps", type=int, help="override the recipe's steps")
    p.add_argument("--no-progress", action="store_true")
    args = p.parse_args(argv)
    check_output_dir(args.out, "--out")  # before any work
    return args


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
    rows = []
    for lam in lams:
        name = f"lam{lam:g}"
        config = base.replace(loss=dataclasses.replace(base.loss, lam=lam))  # only lam changes
        result = train(config, out / "runs" / name, progress=not args.no_progress, figures=False)
        last = result.summary["final_train"]
        for spec in base.data.eval:
            rec = evaluate(result.model_dir, spec, out / "results", eval_config, model_name=name,
                           progress=not args.no_progress, cache_dir=base.data.cache_dir)
            rows.append({"lam": lam, "dataset": rec["dataset"], "n_tokens": rec["n_tokens"],
                         **{k: rec[k] for k in (*KEYS, "ee_share", "top1")},
                         "final_train_ce": last["ce"], "final_train_conf": last["conf"]})
    summary = {"model": base.model.preset, "n_params_non_embedding": result.summary["n_params_non_embedding"],
               "steps": base.steps, "tokens_per_run": result.summary["tokens_trained"], "lams": lams,
               "recipe": base.to_dict(), "rows": rows}
    write_json(out / "sweep.json", summary)
    lines = [f"# Proxy-loss sweep: {base.model.preset} "
             f"({result.summary['n_params_non_embedding']:,} non-embedding parameters), "
             f"{result.summary['tokens_trained']:,} tokens per run", "",
             "| lam | dataset | CE | EE | SA | Conf | EE/CE | top-1 | train CE (last step) | train Conf |",
             "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['lam']:g} | {r['dataset']} | {r['ce']:.4f} | {r['ee']:.4f} | {r['sa']:.4f} | "
                     f"{r['conf']:.4f} | {r['ee_share']:.4f} | {r['top1']:.4f} | {r['final_train_ce']:.4f} | "
                     f"{r['final_train_conf']:.4f} |")
    write_text(out / "sweep.md", "\n".join(lines) + "\n")
    fig, axes = plt.subplots(1, 4, figsize=(16, 3.6))
    for ax, key in zip(axes, KEYS):
        for ds in sorted({r["dataset"] for r in rows}):
            pts = [r for r in rows if r["dataset"] == ds]
            ax.plot([r["lam"] for r in pts], [r[key] for r in pts], marker="o", label=ds)
        ax.set_xlabel("lam")
        ax.set_title({"ce": "CE", "ee": "EE", "sa": "SA", "conf": "Conf"}[key])
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=7)
    fig.suptitle(f"held-out decomposition vs proxy-loss lam ({base.model.preset}, fixed compute)")
    save(fig, out / "lambda_sweep.png")
    print("\n".join(lines))
    return summary


if __name__ == "__main__":
    run_script("experiments/lambda_sweep.py", main)
