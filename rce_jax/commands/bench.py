"""``rce-jax bench``: the kernel benchmark (``python -m rce_kernels.bench``), same options."""

from __future__ import annotations

import argparse


def register(sub, name):
    p = sub.add_parser(name, help="benchmark the token-stats kernels, fused head and proxy loss",
                       add_help=False)
    p.add_argument("bench_args", nargs=argparse.REMAINDER,
                   help="options of the kernel benchmark (--quick, --out, --T, --V, ...; -h lists them)")
    p.set_defaults(run=run)


def run(args) -> int:
    from rce_kernels import bench

    bench.main(args.bench_args, prog="rce-jax bench")
    return 0
