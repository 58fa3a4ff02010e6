"""How often do the fused token statistics disagree with materialised logits + token_stats?

On random data (hidden ~ N(0, 1), head ~ N(0, 1/d), bias ~ N(0, 0.01)) the materialised logits
are ``(hidden @ head.T + bias)`` from one XLA matmul (float32 accumulation, HIGHEST precision)
rounded to the hidden dtype; the fused paths compute the same logits tile by tile. Prints, per
path and dtype, the share of rows whose rank (or ties) differ and, for float32, how many of the
differing rows are ambiguous at the rounding level: in the exact (float64) logits some other
entry lies within 2 e of the target, e being the largest error of the materialised float32
logits against float64.

    python experiments/fused_rank_mismatch.py [--T 2048 --d 128 --V 50257 --seeds 2] [--out DIR]
    python -m rce_jax.bench.rank_mismatch [...]   # the same
"""

from __future__ import annotations

import argparse

import jax
import jax.numpy as jnp
import numpy as np
from rce_kernels import fused_token_stats, token_stats

from ..cli import run_script
from ..io import check_output_dir, write_json, write_text


def problem(seed, T, d, V, dtype):
    k = jax.random.split(jax.random.key(seed), 4)
    hidden = jax.random.normal(k[0], (T, d)).astype(dtype)
    head = (jax.random.normal(k[1], (V, d)) / np.sqrt(d)).astype(dtype)
    bias = jax.random.normal(k[2], (V,)) * 0.1
    targets = jax.random.randint(k[3], (T,), 0, V)
    return hidden, head, bias, targets


def rounding_level_rows(hidden, head, bias, targets, logits, rows):
    """Rows (of ``rows``) where the exact logits hold another entry within 2 e of the target."""
    exact = (np.asarray(hidden, np.float64) @ np.asarray(head, np.float64).T
             + np.asarray(bias, np.float64))
    e = np.abs(np.asarray(logits, np.float64) - exact).max()
    out = 0
    for t in rows:
        y = targets[t]
        out += bool((np.abs(np.delete(exact[t], y) - exact[t, y]) <= 2 * e).any())
    return out


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--T", type=int, default=2048)
    p.add_argument("--d", type=int, default=128)
    p.add_argument("--V", type=int, default=50257)
    p.add_argument("--seeds", type=int, default=2)
    p.add_argument("--impls", default="xla,pallas_interpret,pallas_tpu_interpret")
    p.add_argument("--interpret-rows", type=int, default=128,
                   help="rows for the (slow) interpret-mode paths")
    p.add_argument("--out", help="also write fused_rank_mismatch.json and .md here")
    args = p.parse_args(argv)
    if args.out:
        check_output_dir(args.out, "--out")  # before any work
    lines = [f"JAX {jax.__version__} on {jax.devices()[0].device_kind}; d={args.d} V={args.V}",
             "| path | dtype | rows | rank differs | ties differ | rounding-level (f32) |",
             "|---|---|---|---|---|---|"]
    print("\n".join(lines))
    rows = []
    for impl in args.impls.split(","):
        for name, dtype in (("f32", jnp.float32), ("bf16", jnp.bfloat16)):
            if impl == "pallas_interpret" and name == "f32":
                continue  # the GPU fused kernel takes 16-bit operands only
            T = args.T if impl == "xla" else args.interpret_rows
            n = n_rank = n_ties = n_near = 0
            for seed in range(args.seeds):
                hidden, head, bias, targets = problem(seed, T, args.d, args.V, dtype)
                acc = jnp.dot(hidden, head.T, preferred_element_type=jnp.float32,
                              precision=jax.lax.Precision.HIGHEST)
                logits = (acc + bias).astype(dtype)
                ref = token_stats(logits, targets, impl="xla")
                out = fused_token_stats(hidden, head, targets, bias_V=bias, impl=impl)
                rank_bad = np.asarray(out.rank) != np.asarray(ref.rank)
                ties_bad = np.asarray(out.ties) != np.asarray(ref.ties)
                bad = np.flatnonzero(rank_bad | ties_bad)
                n += T
                n_rank += int(rank_bad.sum())
                n_ties += int(ties_bad.sum())
                if name == "f32":
                    n_near += rounding_level_rows(hidden, head, bias, np.asarray(targets),
                                                  logits, bad)
            near = n_near if name == "f32" else "-"
            lines.append(f"| {impl} | {name} | {n} | {n_rank} ({100 * n_rank / n:.2f}%) | "
                         f"{n_ties} ({100 * n_ties / n:.2f}%) | {near} |")
            print(lines[-1])
            rows.append({"impl": impl, "dtype": name, "rows": n, "rank_differs": n_rank,
                         "ties_differ": n_ties, "rounding_level": n_near if name == "f32" else None})
    if args.out:
        write_json(f"{args.out}/fused_rank_mismatch.json",
                   {"jax": jax.__version__, "device": jax.devices()[0].device_kind,
                    "d": args.d, "V": args.V, "seeds": args.seeds, "rows": rows})
        write_text(f"{args.out}/fused_rank_mismatch.md", "\n".join(lines) + "\n")
    return rows


if __name__ == "__main__":
    run_script("python -m rce_jax.bench.rank_mismatch", main)
