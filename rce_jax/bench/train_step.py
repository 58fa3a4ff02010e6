"""Train-step time of the proxy loss against plain cross-entropy, and training tokens/s.

    python experiments/bench_train_step.py                      # CPU: the demo's largest model
    python experiments/bench_train_step.py --preset 125m --vocab 50304 --batch-size 16 \
        --context-length 1024 --dtype bfloat16 --attention-impl cudnn   # GPU: a 125M-class model
    python -m rce_jax.bench.train_step                          # the same as the script

Each variant is the trainer's own jitted step (model forward and backward, the loss, AdamW with
clipping, donated state) on random tokens; variants are timed in interleaved rounds (so a noisy,
shared machine slows all of them alike) and the median step time is reported. Variants:

* ``ce``: optax's integer-label cross-entropy on materialised logits (the baseline);
* ``proxy``: the trainer's default, ``resolve_loss(auto)`` (on CPU: materialised + ``naive``);
* ``proxy-<head>-<impl>``: explicit choices, e.g. ``proxy-materialised-xla``, ``proxy-fused-xla``.

``--loss-only`` also times the loss alone (forward + backward with respect to the logits) at
the kernel benchmark's shape, to relate to docs/measurements.md ("Kernel benchmark"). Prints the ratio proxy / ce (the
median over rounds of the per-round ratio, robust to the load of a shared machine drifting
between rounds) and writes ``OUT/bench_train_step.json``.
"""

from __future__ import annotations

import argparse
import platform
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from ..cli import run_script
from ..io import check_output_dir, write_json
from ..losses import proxy_loss
from ..models import ModelConfig, init_model, param_counts
from ..train.config import LossSection, OptimSection
from ..train.presets import PRESETS
from ..train.state import init_state, make_optimizer
from ..train.step import make_ce_loss_fn, make_loss_fn, make_train_step, resolve_loss


def parse(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--preset", default="demo-6")
    p.add_argument("--vocab", type=int, default=2048)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--context-length", type=int, default=64)
    p.add_argument("--dtype", choices=("float32", "bfloat16"), default="float32")
    p.add_argument("--attention-impl", choices=("einsum", "xla", "cudnn"), default="einsum",
                   help="cudnn: flash attention on GPUs (bf16)")
    p.add_argument("--lam", type=float, default=0.3, help="proxy-loss lam (the cost does not depend on it)")
    p.add_argument("--variants", default="ce,proxy,proxy-materialised-xla,proxy-fused-xla")
    p.add_argument("--rounds", type=int, default=21)
    p.add_argument("--steps-per-round", type=int, default=10)
    p.add_argument("--loss-only", action="store_true")
    p.add_argument("--out", default="out/bench_train_step")
    args = p.parse_args(argv)
    check_output_dir(args.out, "--out")  # before any work
    return args


def build(args):
    d = dict(PRESETS[args.preset])
    d.update(vocab_size=args.vocab, max_position_embeddings=args.context_length)
    config = ModelConfig.from_hf_dict(d)
    model = init_model(config, dtype=jnp.dtype(args.dtype), param_dtype=jnp.float32,
                       attention_impl=args.attention_impl)
    return config, model


def make_variant(name, args, config, model, tx, schedule):
    graphdef, params = nnx.split(model)
    if name == "ce":
        loss_fn, how = make_ce_loss_fn(graphdef), ("materialised", "optax")
    else:
        if name == "proxy":
            head, impl = resolve_loss(LossSection(lam=args.lam), tokens_per_step=args.batch_size *
                                      args.context_length, vocab_size=config.vocab_size)
        else:
            _, head, impl = name.split("-")
        loss_fn, how = make_loss_fn(graphdef, lam=args.lam, head=head, impl=impl), (head, impl)
    state, _ = init_state(jax.tree.map(jnp.copy, params), tx, family=config.family)
    return make_train_step(loss_fn, tx, schedule), state, how


def batches(args, n):
    rng = np.random.default_rng(0)
    shape = (args.batch_size, args.context_length)
    return [{"input_ids": jnp.asarray(rng.integers(0, args.vocab, shape), jnp.int32),
             "target_ids": jnp.asarray(rng.integers(0, args.vocab, shape), jnp.int32),
             "segment_ids": jnp.ones(shape, jnp.int32), "score_mask": jnp.ones(shape, bool),
             "positions": jnp.broadcast_to(jnp.arange(shape[1], dtype=jnp.int32), shape)}
            for _ in range(n)]


def bench_steps(args):
    config, model = build(args)
    counts = param_counts(model, config)
    tx, schedule = make_optimizer(OptimSection(), 1000, config.hidden_size)
    data = batches(args, 4)
    variants = {}
    for name in args.variants.split(","):
        step, state, how = make_variant(name, args, config, model, tx, schedule)
        t0 = time.perf_counter()
        state, m = step(state, data[0])
        jax.block_until_ready(m)
        variants[name] = {"step": step, "state": state, "how": how, "compile_s": time.perf_counter() - t0,
                          "times": []}
    for _ in range(args.rounds):
        for v in variants.values():
            t0 = time.perf_counter()
            for i in range(args.steps_per_round):
                v["state"], m = v["step"](v["state"], data[i % len(data)])
            jax.block_until_ready(m)
            v["times"].append((time.perf_counter() - t0) / args.steps_per_round)
    tokens = args.batch_size * args.context_length
    out = {}
    for name, v in variants.items():
        med = float(np.median(v["times"]))
        out[name] = {"head": v["how"][0], "impl": v["how"][1], "median_step_ms": 1e3 * med,
                     "min_step_ms": 1e3 * min(v["times"]), "tokens_per_s": tokens / med,
                     "compile_s": v["compile_s"]}
        if "ce" in variants:  # each round times every variant back to back: pair them
            ratios = np.asarray(v["times"]) / np.asarray(variants["ce"]["times"])
            out[name]["ratio_vs_ce"] = float(np.median(ratios))
    return counts, out


def bench_loss_only(args, T=256, V=4099):
    """Loss forward + backward w.r.t. the logits alone (the kernel benchmark's quick shape)."""
    rng = np.random.default_rng(1)
    logits = jnp.asarray(rng.standard_normal((T, V)) * 3, jnp.dtype(args.dtype))
    targets = jnp.asarray(rng.integers(0, V, T), jnp.int32)
    fns = {"ce": lambda z: optax.softmax_cross_entropy_with_integer_labels(z.astype(jnp.float32), targets).mean()}
    for impl in ("naive", "xla"):
        fns[f"proxy-{impl}"] = lambda z, impl=impl: proxy_loss(z, targets, lam=args.lam, impl=impl)[0]
    out = {}
    for name, f in fns.items():
        g = jax.jit(jax.grad(f))
        jax.block_until_ready(g(logits))
        ts = []
        for _ in range(args.rounds * 3):
            t0 = time.perf_counter()
            for _ in range(10):
                r = g(logits)
            jax.block_until_ready(r)
            ts.append((time.perf_counter() - t0) / 10)
        out[name] = {"median_ms": 1e3 * float(np.median(ts))}
    for name in out:
        out[name]["ratio_vs_ce"] = out[name]["median_ms"] / out["ce"]["median_ms"]
    return {"T": T, "V": V, "dtype": args.dtype, "results": out}


def main(argv=None):
    args = parse(argv)
    counts, steps = bench_steps(args)
    result = {"preset": args.preset, "vocab": args.vocab, "batch_size": args.batch_size,
              "context_length": args.context_length, "dtype": args.dtype, "lam": args.lam,
              "n_params": counts["total"], "n_params_non_embedding": counts["non_embedding"],
              "steps": steps, "device": jax.devices()[0].device_kind, "backend": jax.default_backend(),
              "jax": jax.__version__, "python": platform.python_version(),
              "date": time.strftime("%Y-%m-%d")}
    print(f"{args.preset}: {counts['non_embedding']:,} non-embedding / {counts['total']:,} parameters, "
          f"V={args.vocab}, batch {args.batch_size} x {args.context_length}, {args.dtype}, "
          f"{result['backend']} ({result['device']})")
    print(f"{'variant':<26} {'head':<13} {'impl':<7} {'median ms':>10} {'tokens/s':>10} {'compile s':>10}")
    for name, r in steps.items():
        print(f"{name:<26} {r['head']:<13} {r['impl']:<7} {r['median_step_ms']:>10.2f} "
              f"{r['tokens_per_s']:>10.0f} {r['compile_s']:>10.1f}")
    if "ce" in steps:
        for name, r in steps.items():
            if name != "ce":
                print(f"step-time ratio {name} / ce = {r['ratio_vs_ce']:.3f} (median of {args.rounds} "
                      f"paired rounds; ratio of medians {r['median_step_ms'] / steps['ce']['median_step_ms']:.3f})")
    if args.loss_only:
        result["loss_only"] = bench_loss_only(args)
        for name, r in result["loss_only"]["results"].items():
            print(f"loss only (T=256, V=4099) {name}: {r['median_ms']:.3f} ms ({r['ratio_vs_ce']:.2f}x ce)")
    write_json(Path(args.out) / "bench_train_step.json", result)
    return result


if __name__ == "__main__":
    run_script("python -m rce_jax.bench.train_step", main)
