"""The paper's model table on real checkpoints (issue 6, experiment a).

Every model of the table (``rce_jax/paper/models.yaml``) that is present locally is evaluated
on the paper's corpora (one ``rce-jax eval`` result per model x corpus), then the scaling laws
are fitted per (corpus, family) and per corpus with the families mixed, and the figures are
drawn::

    python -m rce_jax.paper.study --out runs/paper --models-dir /data/hf --dry-run
    python experiments/paper_models.py --out runs/paper --models-dir /data/hf \\
        --families gpt2,pythia --corpora c4,python-code --dtype bfloat16

Models are found offline: a folder under ``--models-dir`` named like the repo id (or its last
part, or ``org--name``), else the local Hugging Face cache. Missing ones are listed and skipped.
A corpus that is not available (TFDS not prepared, no GitHub-code path) is replaced by its
offline fallback (``python-docs`` / ``python-code``) unless ``--no-fallback``. Reading the
table and planning live in ``rce_jax.paper.table``; ``experiments/paper_models.py`` is this
module's command line.

Outputs under ``--out``:
  results/<model>__<corpus>.json  the eval results (an existing one is reused; a partial run resumes)
  scaling.md / .csv / .json       fits of CE, EE, SA, Conf, EE/CE against N; "family" and
                                  "dataset" there are the YAML's family and corpus keys
  scaling_*.png, ee_share_*.png, p_e_*.png   the figures
  run.json                        what was found, what ran, what was skipped or failed
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
from pathlib import Path

from rce_jax.cli import run_script
from rce_jax.config import ConfigError, to_dict
from rce_jax.io import check_output_dir, write_json
from rce_jax.report import N_KEYS

from .table import DEFAULT_CONFIG, Plan, Run, format_plan, load_table, make_plan

# ---- running ----------------------------------------------------------------------------------


def report_record(run: Run, result: dict) -> dict:
    """A result relabelled for the report: the table's family and corpus key."""
    return {**result, "family": run.model.entry.family, "architecture": result.get("architecture", result["family"]),
            "dataset": run.corpus.key, "dataset_spec": result["dataset_spec"]}


def run_plan(plan: Plan, config, out, *, cache_dir=None, force=False, keep_going=False, progress=True):
    """Evaluate every run of the plan; returns (report records, failures)."""
    from rce_jax.evaluate import evaluate

    records, failures = [], []
    for run in plan.runs:
        cfg = dataclasses.replace(config, text_field=run.corpus.text_field)
        try:
            result = evaluate(run.model.path, run.corpus.spec, Path(out) / "results", cfg,
                              model_name=run.model.entry.repo, dataset_name=run.corpus.key,
                              cache_dir=cache_dir, force=force,
                              progress=progress)
        except Exception as e:
            if not keep_going:
                raise
            failures.append({"model": run.model.entry.repo, "corpus": run.corpus.key,
                             "error": f"{type(e).__name__}: {e}"})
            print(f"[paper_models] FAILED {run.model.entry.repo} on {run.corpus.key}: {e}", file=sys.stderr)
            continue
        records.append(report_record(run, result))
        print(f"[paper_models] {run.model.entry.repo} on {run.corpus.key}: CE {result['ce']:.4f} = "
              f"EE {result['ee']:.4f} + SA {result['sa']:.4f} - Conf {result['conf']:.4f}")
    return records, failures


def write_report(records, out, *, n_key="non_embedding", figures=True) -> list:
    """scaling.{md,csv,json} and the figures of the relabelled records; returns the paths."""
    from rce_jax.plots import write_figures
    from rce_jax.report import scaling_report

    report = scaling_report(records, n_key=n_key)
    paths = list(report.write(out).values())
    if figures:
        paths += write_figures(report, records, out)
    return paths


def split_list(text):
    return [x.strip() for x in text.split(",") if x.strip()] if text else None


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--config", default=str(DEFAULT_CONFIG), help="the model/corpus table (YAML)")
    p.add_argument("--models-dir", help="folder of model folders named like the repo ids")
    p.add_argument("--no-hf-cache", action="store_true", help="do not look in the local HF cache")
    p.add_argument("--hf-cache-dir", help="the HF hub cache (default: huggingface_hub's)")
    p.add_argument("--families", type=split_list, help="comma-separated family keys (default: all)")
    p.add_argument("--models", type=split_list, help="comma-separated repo ids or aliases (default: all)")
    p.add_argument("--corpora", type=split_list, help="comma-separated corpus keys (default: the table's defaults)")
    p.add_argument("--corpus-spec", action="append", default=[], metavar="KEY=SPEC",
                   help="override a corpus spec, e.g. github-code=/data/code.jsonl (repeatable)")
    p.add_argument("--no-fallback", action="store_true", help="skip unavailable corpora instead of using their fallback")
    p.add_argument("--tfds-data-dir", help="where prepared TFDS datasets live (sets TFDS_DATA_DIR)")
    p.add_argument("--context-length", type=int)
    p.add_argument("--max-tokens", type=int, help="scored tokens per model x corpus (0: whole corpus)")
    p.add_argument("--dtype", choices=("float32", "bfloat16"))
    p.add_argument("--batch-size", type=int)
    p.add_argument("--upcast-logits", action="store_true", help="rank float32 logits")
    p.add_argument("--impl", default="auto", help="token-stats implementation")
    p.add_argument("--model-parallel", type=int, default=1, help="size of the mesh's 'model' axis")
    p.add_argument("--n", dest="n_key", choices=sorted(N_KEYS), help="which parameter count is N")
    p.add_argument("--cache-dir", help="token cache folder")
    p.add_argument("--force", action="store_true", help="recompute existing results")
    p.add_argument("--keep-going", action="store_true", help="go on after a failed evaluation")
    p.add_argument("--no-figures", action="store_true")
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("--distributed", action="store_true", help="jax.distributed.initialize() first")
    p.add_argument("--dry-run", action="store_true", help="print the plan and stop")
    return p


# EvalConfig key -> this command's flag, for the messages of a bad value
FLAGS = {"context_length": "--context-length", "batch_size": "--batch-size", "max_tokens": "--max-tokens",
         "dtype": "--dtype", "impl": "--impl", "model_parallel": "--model-parallel"}


def eval_config(args, d):
    """The ``EvalConfig`` of the table's defaults ``d`` and the flags (a flag wins)."""
    from rce_jax.evaluate import EvalConfig

    max_tokens = d.max_tokens if args.max_tokens is None else (args.max_tokens or None)
    try:
        return EvalConfig(context_length=d.context_length if args.context_length is None else args.context_length,
                          batch_size=d.batch_size if args.batch_size is None else args.batch_size,
                          max_tokens=max_tokens, dtype=args.dtype or d.dtype, impl=args.impl,
                          upcast_logits=args.upcast_logits, model_parallel=args.model_parallel)
    except ConfigError as e:
        if getattr(args, e.key, None) is not None and e.key in FLAGS:
            raise ValueError(f"{FLAGS[e.key]} {e.message}") from None
        raise ConfigError(f"{args.config}: defaults.{e}") from None


def run(args) -> int:
    table = load_table(args.config)
    d = table.defaults
    specs = {}
    for item in args.corpus_spec:
        key, eq, spec = item.partition("=")
        if not eq or not key or not spec:
            raise ValueError(f"--corpus-spec takes KEY=SPEC, got {item!r}")
        specs[key] = spec
    config = eval_config(args, d)  # checks the settings
    context_length, max_tokens, dtype, batch_size = (config.context_length, config.max_tokens, config.dtype,
                                                     config.batch_size)
    if args.tfds_data_dir:
        os.environ["TFDS_DATA_DIR"] = args.tfds_data_dir
    plan = make_plan(table, args.out, models_dir=args.models_dir, hf_cache=not args.no_hf_cache,
                     hf_cache_dir=args.hf_cache_dir, families=args.families, models=args.models,
                     corpora=args.corpora, corpus_specs=specs, fallback=not args.no_fallback,
                     tfds_data_dir=args.tfds_data_dir, context_length=context_length, eval_config=config)
    print(f"settings: context length {context_length}, max tokens {max_tokens or 'all'}, dtype {dtype}, "
          f"batch size {batch_size}, N = {args.n_key or d.n_key}")
    print(format_plan(plan))
    if args.dry_run:
        return 0
    if not plan.runs:
        raise ValueError("nothing to evaluate: " + ("no model of the selection is present" if not plan.present
                                                    else "no corpus is available"))
    import jax

    if args.distributed:
        jax.distributed.initialize()
    records, failures = run_plan(plan, config, args.out, cache_dir=args.cache_dir, force=args.force,
                                 keep_going=args.keep_going, progress=not args.no_progress)
    if jax.process_index() != 0:
        return 1 if failures else 0
    n_key = args.n_key or d.n_key
    paths = write_report(records, args.out, n_key=n_key, figures=not args.no_figures) if records else []
    summary = {
        "config": str(args.config), "eval_config": to_dict(config), "n_used": n_key,
        "models": [{"family": m.entry.family, "repo": m.entry.repo, "status": m.status, "path": m.path,
                    "reason": m.reason} for m in plan.models],
        "corpora": [dataclasses.asdict(c) for c in plan.corpora], "substitutes": plan.substitutes,
        "used_corpora": {c.key: c.spec for c in plan.used},
        "results": [str(r.result) for r in plan.runs if r.result.exists()],
        "failures": failures, "report": [str(p) for p in paths]}
    write_json(Path(args.out) / "run.json", summary)
    print(f"[paper_models] {len(records)} results; wrote {len(paths)} report files and run.json to {args.out}")
    skipped = [m for m in plan.models if m.status != "present"]
    if skipped:
        print(f"[paper_models] not run, {len(skipped)} models: " + ", ".join(
            f"{m.entry.repo} ({m.status})" for m in skipped))
    for f in failures:
        print(f"[paper_models] failed: {f['model']} on {f['corpus']}: {f['error']}", file=sys.stderr)
    return 1 if failures else 0


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    if not args.dry_run:  # a dry run writes nothing
        check_output_dir(args.out, "--out")  # before any work
    try:
        return run(args)
    except (ValueError, FileNotFoundError) as e:
        print(f"paper_models: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    run_script("python -m rce_jax.paper.study", main)
