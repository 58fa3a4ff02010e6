"""``rce-jax demo``: train a ladder of models with one recipe and report what scales."""

from __future__ import annotations

import dataclasses
import shlex
import sys


def register(sub, name):
    p = sub.add_parser(name, help="train a ladder of small models with one recipe, evaluate, fit "
                                  "and report the decomposition's scaling (offline, CPU minutes)")
    p.add_argument("--quick", action="store_true",
                   help="five tiny models, few steps (about a minute; what CI runs)")
    p.add_argument("--out", help="output folder (default ./rce_demo, or ./rce_demo_quick with --quick)")
    p.add_argument("--seeds", type=int, default=None, metavar="K",
                   help="train every rung K times with different seeds and report the seed-to-seed "
                        "spread (default 1: one run per rung; see docs/uncertainty.md for the cost)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(run=run)


def run(args) -> int:
    from ..train.demo import DEMO, QUICK
    from ..io import check_output_dir
    from ..train.ladder import run_ladder

    spec = QUICK if args.quick else DEMO
    if args.seeds is not None:
        if args.seeds < 1:  # reported by rce_jax.cli.run_guarded: one line, exit status 2
            raise ValueError(f"--seeds must be at least 1, got {args.seeds}")
        spec = dataclasses.replace(spec, seeds=args.seeds)
    out = args.out or ("rce_demo_quick" if args.quick else "rce_demo")
    check_output_dir(out, "--out")
    command = ("rce-jax demo" + (" --quick" if args.quick else "") + f" --out {shlex.quote(out)}"
               + (f" --seeds {args.seeds}" if args.seeds is not None else ""))
    report = run_ladder(spec, out, progress=not args.no_progress, command=command,
                        title="rce-jax demo" + (" --quick" if args.quick else "")
                        + ": what scales in cross-entropy, on your machine")
    print()
    print("What it found:")
    for f in report["findings"]:
        for s in f["sentences"]:
            print(f"  - {s}")
    print(f"\nReport: {out}/report.md ({report['wall_s']:.0f} s wall, {report['cpu_s']:.0f} s CPU; "
          f"{spec.seeds} seed(s) per rung)", file=sys.stdout)
    return 0
