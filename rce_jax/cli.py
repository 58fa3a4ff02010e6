"""The ``rce-jax`` command line: one subcommand per module in ``rce_jax.commands``."""

from __future__ import annotations

import argparse
import os
import sys

class CommandError(Exception):
    """A user-facing failure: printed without a traceback, exit status 2."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="rce-jax",
        description="Rank-based decomposition of language-model cross-entropy: "
        "CE = Error-Entropy + Self-Alignment - Confidence (arXiv 2510.04067).",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    # Imported here, not at the top: the experiments' scripts import this module for
    # run_script and need none of the subcommands (scaling pulls in matplotlib).
    from .commands import bench, demo, eval as eval_, scaling, stats, train

    # Each module registers the subcommand named after it: register(subparsers, name) and run(args).
    for module in (bench, eval_, scaling, stats, train, demo):
        module.register(sub, module.__name__.rpartition(".")[2])
    return parser


def is_out_of_memory(e: BaseException) -> bool:
    """An XLA runtime error for a failed device (or host) allocation."""
    return type(e).__name__ in ("JaxRuntimeError", "XlaRuntimeError") and "RESOURCE_EXHAUSTED" in str(e)


def out_of_memory_message(e: BaseException, args) -> str:
    """One line: what did not fit (the batch shape as the flags set it) and what to change."""
    rows, length = getattr(args, "batch_size", None), getattr(args, "context_length", None)
    first = next((ln.strip() for ln in str(e).splitlines() if "RESOURCE_EXHAUSTED" in ln), str(e))
    first = first[first.index("RESOURCE_EXHAUSTED"):]
    if rows and length:
        shape = f"a batch of {rows} x {length} tokens (--batch-size x --context-length)"
    else:
        shape = "a batch (--batch-size rows of --context-length tokens)"
    advice = ["lower --batch-size"]
    if getattr(args, "no_fused", False):
        advice.append("drop --no-fused (the fused head never writes the [tokens, vocabulary] logits)")
    elif hasattr(args, "no_fused"):
        advice.append("keep the fused head (no --no-fused)")
    if hasattr(args, "model_parallel"):
        advice.append("split the model over devices with --model-parallel")
    elif getattr(args, "command", None) == "train":
        advice.append("shard the model with --set model_parallel=N or --set fsdp=true")
    advice = f"{', '.join(advice[:-1])} or {advice[-1]}" if len(advice) > 1 else advice[0]
    return f"out of memory on the device for {shape}: {first.rstrip('.')}; {advice}"


def _quiet_closed_pipe() -> int:
    """stdout's reader went away (``rce-jax ... | head``): stop quietly. Later writes (and the
    interpreter's final flush) go to /dev/null; the status is that of a process killed by SIGPIPE."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)
    return 128 + 13


def run_guarded(name: str, run, args) -> int:
    """``run(args)`` with the command line's boundary: user errors, unwritable outputs and device
    out-of-memory as one line (exit 2), a signal after its checkpoint (128 + signal), a closed
    stdout pipe quietly. Shared by ``rce-jax`` and the scripts in experiments/."""
    from .io import describe_os_error
    from .preempt import Preempted

    try:
        status = run(args)
        status = status if isinstance(status, int) else 0  # some scripts return their results
        sys.stdout.flush()  # a closed pipe shows here, inside the handlers below
        return status
    except BrokenPipeError:
        return _quiet_closed_pipe()
    except Preempted as e:  # a checkpoint was saved; the rerun resumes
        print(f"{name}: stopped by {e}", file=sys.stderr)
        return e.exit_status
    except (CommandError, ValueError, FileNotFoundError, NotADirectoryError, ImportError) as e:
        # ImportError: an optional extra that is not installed (the message says which)
        print(f"{name}: error: {e}", file=sys.stderr)
        return 2
    except OSError as e:  # an output location that cannot be written (full, read-only, ...)
        print(f"{name}: error: {describe_os_error(e) if e.filename else e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{name}: interrupted", file=sys.stderr)
        return 130
    except Exception as e:
        if is_out_of_memory(e):
            print(f"{name}: error: {out_of_memory_message(e, args)}", file=sys.stderr)
            return 2
        raise


def run_script(name: str, main) -> None:
    """Exit with ``main()``'s status under ``run_guarded`` (the experiments' entry point)."""
    sys.exit(run_guarded(name, lambda _: main(), None))


def main(argv=None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra:
        if args.command != "bench":  # bench passes its options through to rce_kernels.bench
            parser.error(f"unrecognized arguments: {' '.join(extra)}")
        args.bench_args = extra + list(args.bench_args)
    return run_guarded(f"rce-jax {args.command}", args.run, args)

if __name__ == "__main__":
    sys.exit(main())
