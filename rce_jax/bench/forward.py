"""Forward throughput: rce_jax (jit) vs transformers (PyTorch, sdpa) on one device.

Default: a Pythia-1B-sized GPT-NeoX with random weights (16 layers, d=2048, 8 heads,
V=50304, context 2048) in bf16. Both sides compute logits [B, L, V]; ours is also
timed returning only the final hidden states (what the fused token-stats kernel
consumes). Timing syncs the device (block_until_ready / torch.cuda.synchronize) and
reports the median of --iters runs after --warmup runs. Writes bench_forward.md and
bench_forward.json to --out. `--tiny` runs a small config (for CPU smoke runs).

  python experiments/bench_forward.py --out out/bench_forward            # on a GPU
  python experiments/bench_forward.py --tiny --out out/bench_forward_cpu  # anywhere
  python -m rce_jax.bench.forward --tiny --out out/bench_forward_cpu      # the same
"""

from __future__ import annotations

import argparse
import datetime
import platform
import statistics
import time

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from ..cli import run_script
from ..io import check_output_dir, write_report
from ..models import forward_hidden, forward_logits, init_model
from .models import FULL, TINY, neox_config


def median_seconds(fn, sync, warmup: int, iters: int) -> list[float]:
    for _ in range(warmup):
        sync(fn())
    times = []
    for _ in range(iters):
        t0 = time.perf_counter()
        sync(fn())
        times.append(time.perf_counter() - t0)
    return times


def bench_jax(config, ids, dtype, impl, warmup, iters):
    model = init_model(config, seed=0, dtype=dtype, attention_impl=impl)
    graphdef, state = nnx.split(model)
    ids_j = jnp.asarray(ids)
    sync = lambda x: x.block_until_ready()  # noqa: E731
    out = {}
    for name, fn in (("logits", forward_logits), ("hidden", forward_hidden)):
        t0 = time.perf_counter()
        sync(fn(graphdef, state, ids_j))
        compile_s = time.perf_counter() - t0
        times = median_seconds(lambda: fn(graphdef, state, ids_j), sync, warmup, iters)
        out[name] = {"times_s": times, "first_call_s": compile_s}
    return out, str(jax.devices()[0].device_kind)


def bench_torch(config, ids, dtype_name, warmup, iters):
    import torch
    import transformers

    device = "cuda" if torch.cuda.is_available() else "cpu"
    hf_cfg = transformers.GPTNeoXConfig(**{k: v for k, v in config.to_hf_dict().items()
                                           if k not in ("architectures", "model_type")})
    torch_dtype = {"bfloat16": torch.bfloat16, "float32": torch.float32}[dtype_name]
    with torch.device(device):
        model = transformers.GPTNeoXForCausalLM._from_config(hf_cfg, attn_implementation="sdpa")
    model = model.to(torch_dtype).eval()
    x = torch.as_tensor(ids, device=device)
    sync = (lambda _: torch.cuda.synchronize()) if device == "cuda" else (lambda _: None)

    def run():
        with torch.inference_mode():
            return model(input_ids=x).logits

    times = median_seconds(run, sync, warmup, iters)
    name = torch.cuda.get_device_name() if device == "cuda" else platform.processor() or "cpu"
    return {"logits": {"times_s": times}}, name, torch.__version__, transformers.__version__


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--tiny", action="store_true", help="small config (CPU smoke run)")
    ap.add_argument("--batch", type=int, default=None, help="rows per forward (default 8; tiny 2)")
    ap.add_argument("--seq", type=int, default=None, help="tokens per row (default: context)")
    ap.add_argument("--dtype", default="bfloat16", choices=["bfloat16", "float32"])
    ap.add_argument("--attention-impl", default="einsum", choices=["einsum", "xla", "cudnn"])
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--iters", type=int, default=20)
    ap.add_argument("--no-torch", action="store_true", help="time only rce_jax")
    a = ap.parse_args(argv)
    check_output_dir(a.out, "--out")  # before any work

    config = neox_config(TINY if a.tiny else FULL)
    batch = a.batch or (2 if a.tiny else 8)
    seq = a.seq or config.max_position_embeddings
    ids = np.random.default_rng(0).integers(0, config.vocab_size, (batch, seq)).astype(np.int32)
    tokens = batch * seq
    rows, result = [], {
        "config": {k: getattr(config, k) for k in ("vocab_size", "hidden_size", "num_layers",
                                                   "num_heads", "intermediate_size")},
        "batch": batch, "seq": seq, "dtype": a.dtype, "attention_impl": a.attention_impl,
        "warmup": a.warmup, "iters": a.iters, "jax": jax.__version__,
        "date": datetime.date.today().isoformat(), "results": {}}

    jres, jdev = bench_jax(config, ids, jnp.dtype(a.dtype), a.attention_impl, a.warmup, a.iters)
    result["jax_device"] = jdev
    for name, r in jres.items():
        med = statistics.median(r["times_s"])
        result["results"][f"rce_jax_{name}"] = {**r, "median_s": med, "tokens_per_s": tokens / med}
        rows.append((f"rce_jax (jit) -> {name}", jdev, med, tokens / med))
    if not a.no_torch:
        tres, tdev, tv, trv = bench_torch(config, ids, a.dtype, a.warmup, a.iters)
        result.update(torch_device=tdev, torch=tv, transformers=trv)
        med = statistics.median(tres["logits"]["times_s"])
        result["results"]["torch_logits"] = {**tres["logits"], "median_s": med,
                                             "tokens_per_s": tokens / med}
        rows.append(("transformers (PyTorch, sdpa) -> logits", tdev, med, tokens / med))

    size = "tiny" if a.tiny else "Pythia-1B-sized"
    md = [f"# Forward throughput ({size} GPT-NeoX, {a.dtype}, batch {batch} x {seq} tokens)", "",
          f"Median of {a.iters} runs after {a.warmup} warm-up runs; JAX {jax.__version__}, "
          f"attention {a.attention_impl}; {result['date']}.", "",
          "| implementation | device | median ms | tokens/s |", "|---|---|---|---|"]
    md += [f"| {n} | {d} | {m * 1e3:.2f} | {t:,.0f} |" for n, d, m, t in rows]
    print(write_report(a.out, "bench_forward", result, md))


if __name__ == "__main__":
    run_script("python -m rce_jax.bench.forward", main)
