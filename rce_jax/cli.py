"""The ``rce-jax`` command line: one subcommand per module in ``rce_jax.commands``."""

from __future__ import annotations

import argparse
import importlib
import sys

# subcommand -> module in rce_jax.commands defining register(subparsers) and run(args)
COMMANDS = {
    "bench": "bench",
    "eval": "eval",
    "scaling": "scaling",
    "stats": "stats",
    "train": "train",
    "demo": "demo",
}


class CommandError(Exception):
    """A user-facing failure: printed without a traceback, exit status 2."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="rce-jax",
        description="Rank-based decomposition of language-model cross-entropy: "
        "CE = Error-Entropy + Self-Alignment - Confidence (arXiv 2510.04067).",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, module in COMMANDS.items():
        importlib.import_module(f"rce_jax.commands.{module}").register(sub, name)
    return parser


def main(argv=None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra:
        if args.command != "bench":  # bench passes its options through to rce_kernels.bench
            parser.error(f"unrecognized arguments: {' '.join(extra)}")
        args.bench_args = extra + list(args.bench_args)
    try:
        return int(args.run(args) or 0)
    except (CommandError, ValueError, FileNotFoundError, NotADirectoryError, ImportError) as e:
        # ImportError: an optional extra that is not installed (the message says which)
        print(f"rce-jax {args.command}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"rce-jax {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
