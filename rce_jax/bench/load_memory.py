"""Host memory while loading a sharded checkpoint with rce_jax.models.from_pretrained.

Creates (once) a random Llama-style checkpoint of about --gb gigabytes in float32, saved
by transformers as sharded safetensors, then loads it in a fresh subprocess and reports
(from /proc/self/status and resource.getrusage, no psutil):
  baseline RSS (after importing JAX and initialising the backend), peak RSS, final RSS,
  model bytes, largest shard bytes, and overhead = peak - baseline - model bytes.
On CPU the loaded arrays live in host RAM, so they are part of the final RSS.

  python experiments/load_memory.py --dir /tmp/ckpt_1gb --out out/load_memory
  python -m rce_jax.bench.load_memory --dir /tmp/ckpt_1gb --out out/load_memory  # the same
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

from ..cli import run_script
from ..io import check_output_dir, write_json, write_text


def make_checkpoint(directory: str, gb: float, shard: str) -> None:
    import torch
    import transformers

    layers = max(1, round((gb * 2**30 / 4 - 2 * 32000 * 1024) / (1024 * 1024 * 16 + 2048)))
    cfg = transformers.LlamaConfig(vocab_size=32000, hidden_size=1024, intermediate_size=4096,
                                   num_hidden_layers=layers, num_attention_heads=16,
                                   tie_word_embeddings=False)
    torch.manual_seed(0)
    model = transformers.LlamaForCausalLM(cfg)
    model.save_pretrained(directory, max_shard_size=shard)


def _rss_kb(field: str = "VmRSS") -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def measure(directory: str) -> dict:
    """Runs in the child process."""
    import resource

    import jax
    import jax.numpy as jnp

    from ..models import Checkpoint, from_pretrained, param_counts

    jax.numpy.zeros(1).block_until_ready()  # initialise the backend before the baseline
    ckpt = Checkpoint(directory)
    largest = ckpt.largest_file_bytes()
    del ckpt
    baseline = _rss_kb() * 1024
    t0 = time.perf_counter()
    model, config, _ = from_pretrained(directory, dtype=jnp.float32, tokenizer=False)
    jax.block_until_ready(jax.tree.leaves(model))
    seconds = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux: kilobytes
    final = _rss_kb() * 1024
    counts = param_counts(model, config)
    model_bytes = counts["total"] * 4
    return {"directory": directory, "baseline_rss": baseline, "peak_rss": peak, "final_rss": final,
            "model_bytes": model_bytes, "largest_shard_bytes": largest,
            "overhead_bytes": peak - baseline - model_bytes, "load_seconds": round(seconds, 2),
            "params": counts["total"], "jax": jax.__version__, "device": str(jax.devices()[0])}


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--dir", required=True, help="checkpoint directory (created if missing)")
    ap.add_argument("--gb", type=float, default=1.0, help="checkpoint size to create")
    ap.add_argument("--shard", default="200MB", help="max_shard_size for the created checkpoint")
    ap.add_argument("--out", default=None, help="folder for load_memory.json / .md")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    if a.out:
        check_output_dir(a.out, "--out")  # before any work
    if a.child:
        print(json.dumps(measure(a.dir)))
        return
    if not os.path.exists(os.path.join(a.dir, "config.json")):
        make_checkpoint(a.dir, a.gb, a.shard)
    proc = subprocess.run([sys.executable, "-m", "rce_jax.bench.load_memory", "--dir", a.dir, "--child"],
                          capture_output=True, text=True, check=True)
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    mib = lambda b: f"{b / 2**20:.0f} MiB"  # noqa: E731
    table = "\n".join([
        "| quantity | value |", "|---|---|",
        *(f"| {k} | {mib(result[k])} |" for k in ("baseline_rss", "peak_rss", "final_rss",
                                                   "model_bytes", "largest_shard_bytes",
                                                   "overhead_bytes")),
        f"| load time | {result['load_seconds']} s |", f"| device | {result['device']} |"])
    print(table)
    if a.out:
        write_json(os.path.join(a.out, "load_memory.json"), result)
        write_text(os.path.join(a.out, "load_memory.md"), table + "\n")


if __name__ == "__main__":
    run_script("python -m rce_jax.bench.load_memory", main)
