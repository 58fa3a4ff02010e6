"""``rce-jax scaling``: fit the scaling laws of evaluation results and write the report."""

from __future__ import annotations

import sys

from .. import plots
from ..io import check_output_dir, read_json_files
from ..results import EvalResult, is_result
from ..report import METRICS, N_KEYS, scaling_report


def register(sub, name):
    p = sub.add_parser(name, help="fit scaling laws of eval results; write tables (and figures)")
    p.add_argument("results", nargs="+", help="result JSON files of `rce-jax eval`, or folders of them")
    p.add_argument("--out", required=True, help="report folder")
    p.add_argument("--n", dest="n_key", choices=sorted(N_KEYS), default="non_embedding",
                   help="which parameter count is N (default: non-embedding, as in Kaplan et al.)")
    p.add_argument("--metrics", default=",".join(METRICS),
                   help=f"comma-separated metrics to fit (default: {','.join(METRICS)})")
    p.add_argument("--histogram-models", default="",
                   help="comma-separated model names for the p_e histograms (default: all)")
    p.add_argument("--no-figures", action="store_true", help="write the tables only")
    p.set_defaults(run=run)


def collect_results(paths) -> list[EvalResult]:
    """Result records from files and folders (``*.json`` directly inside a folder), any version."""
    records = []
    for f, rec in read_json_files(paths):
        if not is_result(rec):
            raise ValueError(f"{f}: not an `rce-jax eval` result (no 'schema': 'rce-jax/eval-result')")
        records.append(EvalResult.from_dict(rec, str(f)))
    return records


def run(args) -> int:
    check_output_dir(args.out, "--out")
    records = collect_results(args.results)
    metrics = tuple(m.strip() for m in args.metrics.split(",") if m.strip())
    report = scaling_report(records, n_key=args.n_key, metrics=metrics)
    print(f"[rce-jax scaling] {len(records)} results in {len(report.groups)} corpus group(s):")
    print(report.grouping_summary())
    for w in report.warnings:
        print(f"rce-jax scaling: warning: {w}", file=sys.stderr)
    paths = list(report.write(args.out).values())
    if not args.no_figures:
        paths += plots.write_figures(report, records, args.out, args.histogram_models)
    print(report.to_markdown())
    print("wrote " + ", ".join(str(p) for p in paths))
    return 0
