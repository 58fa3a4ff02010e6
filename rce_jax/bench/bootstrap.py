"""What the document bootstrap costs an evaluation: tokens/s of ``rce-jax eval`` with
``--bootstrap 0`` and with B replicates, and the host-side fold alone.

A random GPT-NeoX model (``rce_jax.bench.models``' shapes: Pythia-1B's, or a tiny one with ``--tiny``)
is written as a Hugging Face folder with a byte-level BPE, then ``rce_jax.evaluate.evaluate`` runs
on the same corpus once per setting to compile and once more, warm, to time (``timings.eval_s`` of
the warm run: the scoring loop, without loading or tokenizing). The host fold
(``BootstrapStats.add_tokens``) is also timed on its own on synthetic batches of the same shape.

  python experiments/bench_bootstrap.py --tiny --out out/bench_bootstrap_cpu   # CPU, 40.5 s measured
  python experiments/bench_bootstrap.py --out out/bench_bootstrap              # on a GPU
  python -m rce_jax.bench.bootstrap --tiny --out out/bench_bootstrap_cpu       # the same as the script
"""

from __future__ import annotations

import argparse
import datetime
import platform
import tempfile
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from ..bootstrap import BootstrapStats
from ..cli import run_script
from ..evaluate import EvalConfig, evaluate
from ..io import check_output_dir, write_report
from .models import EvalSizes, build_model_dir

SIZES = EvalSizes(context_length=(128, 2048), batch_size=(8, 16), max_tokens=(60_000, 2_000_000))


def time_fold(replicates: int, tokens: int, vocab: int, docs: int, repeats: int, seed: int = 0) -> float:
    """Seconds per batch of ``tokens`` tokens over ``docs`` documents for the host fold."""
    rng = np.random.default_rng(seed)
    boot = BootstrapStats(vocab, replicates)
    batches = []
    for _ in range(repeats):
        rank = np.minimum(rng.geometric(0.05, tokens) - 1, vocab - 1)
        batches.append((rank, -rng.gamma(2.0, 1.0, tokens), rng.integers(0, 2**63, docs)[rng.integers(0, docs, tokens)]
                        .astype(np.uint64)))
    t0 = time.perf_counter()
    for b in batches:
        boot.add_tokens(*b)
    return (time.perf_counter() - t0) / repeats


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", required=True)
    p.add_argument("--tiny", action="store_true", help="a tiny model (CPU)")
    p.add_argument("--replicates", default="0,200", help="comma-separated --bootstrap values (default 0,200)")
    p.add_argument("--data", default="python-code@heldout")
    SIZES.add_options(p)
    args = p.parse_args(argv)
    check_output_dir(args.out, "--out")  # before any work
    replicates = [int(x) for x in args.replicates.split(",")]
    L, B, max_tokens = SIZES.resolve(args)
    out = Path(args.out)
    dtype = "float32" if args.tiny else "bfloat16"
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        model_dir = build_model_dir(work, args.tiny, jnp.dtype(dtype), None, args.data)
        rows = []
        for r in replicates:
            cfg = EvalConfig(context_length=L, batch_size=B, max_tokens=max_tokens, dtype=dtype, bootstrap=r)
            evaluate(model_dir, args.data, work / f"cold{r}", cfg, cache_dir=work / "cache", progress=False)
            warm = evaluate(model_dir, args.data, work / f"warm{r}", cfg, cache_dir=work / "cache", progress=False)
            rows.append({"replicates": r, "tokens": warm["n_tokens"], "documents": warm["n_documents"],
                         "eval_s": warm["timings"]["eval_s"], "tokens_per_s": warm["timings"]["tokens_per_s"],
                         "distinct_ranks": len(warm["rank_stats"]["ranks"]), "ce": warm["ce"]})
            print(rows[-1], flush=True)
        vocab = warm["rank_stats"]["vocab_size"]
        fold = [{"replicates": r, "tokens_per_batch": B * L,
                 "s_per_batch": time_fold(r, B * L, vocab, max(1, B * L // 400), repeats=20)}
                for r in replicates if r]
    base = next((x for x in rows if x["replicates"] == 0), None)
    for x in rows:
        x["slowdown_vs_none"] = base["eval_s"] and x["eval_s"] / base["eval_s"] if base else None
    result = {"date": datetime.date.today().isoformat(), "device": jax.devices()[0].device_kind,
              "backend": jax.default_backend(), "python": platform.python_version(), "jax": jax.__version__,
              "model": "tiny GPT-NeoX" if args.tiny else "GPT-NeoX of Pythia-1B's shape", "dtype": dtype,
              "context_length": L, "batch_size": B, "data": args.data, "rows": rows, "host_fold": fold}
    lines = [f"# Bootstrap cost: {result['model']} ({dtype}) on {result['device']}, {args.data}, "
             f"L = {L}, batch {B}", "",
             "| --bootstrap | tokens | documents | eval s (warm) | tokens/s | x time of --bootstrap 0 |",
             "|---:|---:|---:|---:|---:|---:|"]
    for x in rows:
        lines.append(f"| {x['replicates']} | {x['tokens']:,} | {x['documents']} | {x['eval_s']:.2f} | "
                     f"{x['tokens_per_s']:,.0f} | {x['slowdown_vs_none']:.2f} |")
    lines += ["", "Host fold alone (synthetic batch, ranks geometric, one document per 400 tokens):", "",
              "| replicates | tokens per batch | ms per batch |", "|---:|---:|---:|"]
    for f in fold:
        lines.append(f"| {f['replicates']} | {f['tokens_per_batch']:,} | {1e3 * f['s_per_batch']:.2f} |")
    print(write_report(out, "bench_bootstrap", result, lines))
    return result


if __name__ == "__main__":
    run_script("python -m rce_jax.bench.bootstrap", main)
