"""Kernel benchmark: ``python -m rce_kernels.bench [--quick] [--out DIR] [filters]``.

One run measures, on the default JAX device:

1. the device's copy bandwidth (an elementwise pass over a large array: bytes read + written)
   and its bf16 matmul rate;
2. token statistics on materialised logits for every T x V x dtype: median time, GB/s (bytes:
   the logits read once plus the small per-row inputs/outputs), % of the measured bandwidth,
   speed-up over the best pure-JAX path; implementations ``pallas`` (on GPU/TPU), ``xla``
   (streaming), ``naive`` (jnp) and, when torch is installed, ``torch_eager`` /
   ``torch_compile``;
3. the fused LM head + statistics in TFLOP/s (2 T V d) and % of the matmul rate, against an XLA
   matmul followed by token statistics;
4. the proxy loss forward + backward against plain cross-entropy forward + backward
   (``optax.softmax_cross_entropy_with_integer_labels``), materialised and fused.

Times are medians over ``--repeats`` measurements, each ``--inner`` back-to-back calls of a
jitted function closed by ``block_until_ready`` (compilation and a warm-up call excluded).
Peak memory: the compiled executable's ``memory_analysis()`` (arguments + outputs + scratch),
and for torch on CUDA ``max_memory_allocated``. Results go to ``DIR/bench.md`` and
``DIR/bench.json``, written atomically. Failures (e.g. out of memory) are recorded, not fatal.
"""

from __future__ import annotations

import os

# Let torch share the GPU: without this JAX reserves most of its memory at first use.
os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")

import argparse  # noqa: E402
import datetime  # noqa: E402
import gc  # noqa: E402
import json  # noqa: E402
import statistics  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402

from . import bench_torch  # noqa: E402
from .bench_report import markdown  # noqa: E402
from .dispatch import (  # noqa: E402
    fused_token_stats,
    plan_fused_token_stats,
    plan_token_stats,
    token_stats,
)
from .support import Device, UnsupportedShapeError  # noqa: E402
from .proxy_loss import ce_conf, ce_conf_fused  # noqa: E402

DTYPES = {"bf16": jnp.bfloat16, "f32": jnp.float32}
FULL = dict(T=(8192, 32768, 65536), V=(50257, 128256, 151936), hidden=4096, repeats=10, inner=5,
            copy_mib=4096, matmul=8192)
QUICK = dict(T=(256,), V=(1000, 4099), hidden=64, repeats=3, inner=2, copy_mib=64, matmul=512)
TOKEN_IMPLS = ("pallas", "xla", "naive", "torch_eager", "torch_compile")
FUSED_IMPLS = ("pallas", "xla", "materialised")
LOSS_IMPLS = ("proxy", "ce", "proxy_fused", "ce_materialised")
SECTIONS = ("token_stats", "fused", "loss")


def _ints(text):
    return tuple(int(x) for x in text.split(","))


def _names(choices):
    def parse(text):
        names = tuple(text.split(","))
        bad = [n for n in names if n not in choices]
        if bad:
            raise argparse.ArgumentTypeError(f"unknown {bad}; choose from {','.join(choices)}")
        return names
    return parse


def parse_args(argv=None, prog: str = "python -m rce_kernels.bench"):
    p = argparse.ArgumentParser(prog=prog, description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default="bench_results", help="folder for bench.md / bench.json")
    p.add_argument("--quick", action="store_true", help="small shapes (CPU smoke runs)")
    p.add_argument("--T", type=_ints, help="comma-separated token counts")
    p.add_argument("--V", type=_ints, help="comma-separated vocabulary sizes")
    p.add_argument("--hidden", type=int, help="hidden width d of the fused benchmark")
    p.add_argument("--dtypes", type=_names(tuple(DTYPES)), default=tuple(DTYPES))
    p.add_argument("--impls", type=_names(TOKEN_IMPLS + FUSED_IMPLS + LOSS_IMPLS),
                   help="only these implementations (default: all)")
    p.add_argument("--sections", type=_names(SECTIONS), default=SECTIONS)
    p.add_argument("--repeats", type=int, help="timed measurements per case (median taken)")
    p.add_argument("--inner", type=int, help="back-to-back calls per measurement")
    args = p.parse_args(argv)
    base = QUICK if args.quick else FULL
    for key in ("T", "V", "hidden", "repeats", "inner"):
        if getattr(args, key) is None:
            setattr(args, key, base[key])
    args.copy_mib, args.matmul = base["copy_mib"], base["matmul"]
    return args


def median_time(fn, args, repeats, inner):
    jax.block_until_ready(fn(*args))  # compile + warm-up, not timed
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(inner):
            out = fn(*args)
        jax.block_until_ready(out)
        times.append((time.perf_counter() - t0) / inner)
    return statistics.median(times)


def peak_bytes(fn, args):
    mem = fn.lower(*args).compile().memory_analysis()
    if mem is None:
        return None
    peak = getattr(mem, "peak_memory_in_bytes", 0)
    return int(peak) or int(mem.argument_size_in_bytes + mem.output_size_in_bytes
                            + mem.temp_size_in_bytes)


def planned(plan_fn, *args, **kwargs) -> dict:
    """The record fields of what a dispatch call runs (``ran``, ``skipped``: the plan
    ``plan_fn(*args, **kwargs)``), or the error an explicit impl raises instead of falling
    back."""
    try:
        plan = plan_fn(*args, **kwargs)
    except UnsupportedShapeError as e:
        return {"error": str(e)}
    return {"ran": plan.impl, "skipped": dict(plan.skipped)}


def measure(fn, args, opts, **record):
    if "error" in record:  # refused before any work (an explicit impl that cannot run)
        return record
    try:
        jitted = jax.jit(fn)
        record["seconds"] = median_time(jitted, args, opts.repeats, opts.inner)
        record["peak_bytes"] = peak_bytes(jitted, args)
    except Exception as e:  # recorded (OOM, unsupported shape), the run goes on
        record["error"] = f"{type(e).__name__}: {str(e).splitlines()[0][:200]}"
    return record


def device_rates(opts):
    n = opts.copy_mib * (1 << 20) // 4
    x = jnp.ones((n,), jnp.float32)
    t = median_time(jax.jit(lambda a: a * 2.0 + 1.0), (x,), opts.repeats, opts.inner)
    bw = 2 * x.nbytes / t / 1e9
    m = opts.matmul
    a = jax.random.normal(jax.random.key(0), (m, m), jnp.bfloat16)
    t = median_time(jax.jit(lambda p, q: p @ q), (a, a), opts.repeats, opts.inner)
    return {"copy_gbps": bw, "copy_bytes": 2 * x.nbytes, "matmul_tflops": 2 * m ** 3 / t / 1e12,
            "matmul_shape": [m, m, m]}


def _wanted(opts, name):
    return opts.impls is None or name in opts.impls


def bench_token_stats(opts, rates, has_pallas):
    rows = []
    for T in opts.T:
        for V in opts.V:
            for dn in opts.dtypes:
                key = jax.random.key(T + V)
                z = jax.random.normal(key, (T, V), DTYPES[dn])
                y = jax.random.randint(jax.random.fold_in(key, 1), (T,), 0, V)
                nbytes = z.nbytes + T * (4 + 4 + 4 + 4)  # logits + targets + three outputs
                base = dict(T=T, V=V, dtype=dn, bytes=nbytes)
                impls = {"xla": lambda a, b: token_stats(a, b, impl="xla"),
                         "naive": lambda a, b: token_stats(a, b, impl="naive")}
                if has_pallas:
                    impls = {"pallas": lambda a, b: token_stats(a, b, impl="pallas"), **impls}
                for name, fn in impls.items():
                    if _wanted(opts, name):
                        ran = planned(plan_token_stats, z.shape, z.dtype, impl=name)
                        rows.append(measure(fn, (z, y), opts, impl=name, **base, **ran))
                del z, y
                gc.collect()
                for name in ("torch_eager", "torch_compile"):
                    if _wanted(opts, name) and bench_torch.available():
                        rows.append(_torch_row(opts, name, base))
    for r in rows:
        if "seconds" in r:
            r["gbps"] = r["bytes"] / r["seconds"] / 1e9
            r["pct_bandwidth"] = 100 * r["gbps"] / rates["copy_gbps"]
    return rows


def _torch_row(opts, name, base):
    record = dict(impl=name, **base)
    try:
        sec, peak, dev = bench_torch.time_token_stats(
            base["T"], base["V"], base["dtype"], compiled=name == "torch_compile",
            jax_backend=jax.default_backend(), repeats=opts.repeats, inner=opts.inner)
        record.update(seconds=sec, peak_bytes=peak, torch_device=dev)
    except Exception as e:
        record["error"] = f"{type(e).__name__}: {str(e).splitlines()[0][:200]}"
    return record


def bench_fused(opts, rates, has_pallas):
    rows = []
    d = opts.hidden
    for T in opts.T:
        for V in opts.V:
            for dn in opts.dtypes:
                k = jax.random.split(jax.random.key(T * V), 3)
                h = jax.random.normal(k[0], (T, d), DTYPES[dn])
                w = (jax.random.normal(k[1], (V, d)) / d ** 0.5).astype(DTYPES[dn])
                y = jax.random.randint(k[2], (T,), 0, V)
                impls = {
                    "xla": lambda a, b, c: fused_token_stats(a, b, c, impl="xla"),
                    "materialised": lambda a, b, c: token_stats(
                        jnp.dot(a, b.T, preferred_element_type=jnp.float32).astype(a.dtype), c,
                        impl="auto"),
                }
                if has_pallas:
                    impls = {"pallas": lambda a, b, c: fused_token_stats(a, b, c, impl="pallas"),
                             **impls}
                for name, fn in impls.items():
                    if _wanted(opts, name):
                        if name == "materialised":
                            ran = planned(plan_token_stats, (T, V), h.dtype)
                        else:
                            ran = planned(plan_fused_token_stats, h.shape, w.shape, h.dtype,
                                          w.dtype, impl=name)
                        rows.append(measure(fn, (h, w, y), opts, impl=name, T=T, V=V, d=d,
                                            dtype=dn, flops=2 * T * V * d, **ran))
                del h, w, y
                gc.collect()
    for r in rows:
        if "seconds" in r:
            r["tflops"] = r["flops"] / r["seconds"] / 1e12
            r["pct_matmul"] = 100 * r["tflops"] / rates["matmul_tflops"]
    return rows


def bench_loss(opts):
    import optax  # a dependency of rce-jax; only this section needs it

    rows = []
    lam = 0.5
    for T in opts.T:
        for V in opts.V:
            for dn in opts.dtypes:
                k = jax.random.split(jax.random.key(T - V), 4)
                z = jax.random.normal(k[0], (T, V), DTYPES[dn])
                y = jax.random.randint(k[1], (T,), 0, V)
                mask = jnp.ones((T,), bool)
                d = opts.hidden
                h = jax.random.normal(k[2], (T, d), DTYPES[dn])
                w = (jax.random.normal(k[3], (V, d)) / d ** 0.5).astype(DTYPES[dn])
                bias = jnp.zeros((V,), jnp.float32)

                def proxy(a):
                    ce, conf = ce_conf(a, y, mask)
                    return ce + lam * conf

                def ce(a):
                    return optax.softmax_cross_entropy_with_integer_labels(a, y).mean()

                def proxy_fused(a, b):
                    c, conf = ce_conf_fused(a, b, bias, y, mask)
                    return c + lam * conf

                def ce_materialised(a, b):
                    logits = jnp.dot(a, b.T, preferred_element_type=jnp.float32).astype(a.dtype)
                    return ce(logits)

                cases = {"proxy": (jax.grad(proxy), (z,)), "ce": (jax.grad(ce), (z,)),
                         "proxy_fused": (jax.grad(proxy_fused, argnums=(0, 1)), (h, w)),
                         "ce_materialised": (jax.grad(ce_materialised, argnums=(0, 1)), (h, w))}
                for name, (fn, args) in cases.items():
                    if _wanted(opts, name):
                        rows.append(measure(fn, args, opts, impl=name, T=T, V=V, dtype=dn,
                                            d=d if "fused" in name or "mat" in name else None))
                del z, h, w
                gc.collect()
    return rows


def write_atomic(path, text):
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".bench.", dir=folder)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def main(argv=None, prog: str = "python -m rce_kernels.bench") -> dict:
    """Run the benchmark; ``prog`` is the command name its --help and errors show."""
    opts = parse_args(argv, prog)
    dev = jax.devices()[0]
    backend = jax.default_backend()
    has_pallas = Device.default().backend in ("gpu", "tpu")  # a row per kernel; refusals recorded
    meta = {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "device": dev.device_kind, "backend": backend, "jax": jax.__version__,
        "torch": bench_torch.version(), "quick": opts.quick, "repeats": opts.repeats,
        "inner": opts.inner, "pallas": has_pallas,
    }
    print(f"rce_kernels.bench on {dev.device_kind} ({backend}), JAX {jax.__version__}", flush=True)
    rates = device_rates(opts)
    print(f"copy {rates['copy_gbps']:.1f} GB/s, bf16 matmul {rates['matmul_tflops']:.2f} TFLOP/s",
          flush=True)
    result = {"meta": meta, "rates": rates}
    if "token_stats" in opts.sections:
        result["token_stats"] = bench_token_stats(opts, rates, has_pallas)
    if "fused" in opts.sections:
        result["fused"] = bench_fused(opts, rates, has_pallas)
    if "loss" in opts.sections:
        result["loss"] = bench_loss(opts)
    text = markdown(result)
    write_atomic(os.path.join(opts.out, "bench.json"), json.dumps(result, indent=2) + "\n")
    write_atomic(os.path.join(opts.out, "bench.md"), text)
    print(text, flush=True)
    return result


if __name__ == "__main__":
    main()
