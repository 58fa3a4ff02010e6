"""Peak scratch memory of the pure-JAX token statistics, from XLA's own buffer assignment.

    python experiments/token_stats_memory.py [--out DIR]
    python -m rce_jax.bench.token_stats_memory [--out DIR]   # the same

For each shape and dtype: the compiled temp bytes of ``token_stats_xla`` (streaming) and
``token_stats_naive`` (log_softmax + take + compare), next to the size of the logits and of one
float32 copy of them. Runs on whatever backend JAX has; nothing is executed, only compiled.
"""

from __future__ import annotations

import argparse
import datetime

import jax
import jax.numpy as jnp
from rce_kernels import token_stats_naive, token_stats_xla

from ..cli import run_script
from ..io import check_output_dir, write_json, write_text

SHAPES = [(256, 50257), (2048, 50257), (1024, 128256), (1024, 151936)]


def measure(T, V, dtype):
    args = (jax.ShapeDtypeStruct((T, V), dtype), jax.ShapeDtypeStruct((T,), jnp.int32))
    temp = {f.__name__: f.lower(*args).compile().memory_analysis().temp_size_in_bytes
            for f in (token_stats_xla, token_stats_naive)}
    return {"T": T, "V": V, "dtype": jnp.dtype(dtype).name,
            "logits_MB": T * V * jnp.dtype(dtype).itemsize / 1e6, "f32_copy_MB": T * V * 4 / 1e6,
            "streaming_temp_MB": temp["token_stats_xla"] / 1e6, "naive_temp_MB": temp["token_stats_naive"] / 1e6}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", help="write memory.json and memory.md here")
    args = parser.parse_args(argv)
    if args.out:
        check_output_dir(args.out, "--out")  # before any work
    rows = [measure(T, V, dt) for T, V in SHAPES for dt in (jnp.float32, jnp.bfloat16)]
    head = (f"backend {jax.default_backend()}, JAX {jax.__version__}, {datetime.date.today()}\n\n"
            "| T | V | dtype | logits MB | one f32 copy MB | streaming temp MB | naive temp MB |\n"
            "|---:|---:|---|---:|---:|---:|---:|")
    lines = [head] + [f"| {r['T']} | {r['V']} | {r['dtype']} | {r['logits_MB']:.1f} | {r['f32_copy_MB']:.1f} | "
                      f"{r['streaming_temp_MB']:.1f} | {r['naive_temp_MB']:.1f} |" for r in rows]
    table = "\n".join(lines)
    print(table)
    if args.out:
        write_json(f"{args.out}/memory.json", rows)
        write_text(f"{args.out}/memory.md", table + "\n")


if __name__ == "__main__":
    run_script("python -m rce_jax.bench.token_stats_memory", main)
