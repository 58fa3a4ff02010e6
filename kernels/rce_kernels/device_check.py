"""One script that proves the kernels on a device: ``python -m rce_kernels.device_check --out DIR``.

Sections, in this order (a later one never runs before an earlier one has finished):

1. **correctness** of every kernel this device runs (GPU: the Mosaic GPU kernels; TPU: the
   Mosaic TPU kernels; CPU: both in interpret mode), on fresh random inputs, against the XLA
   path and a float64 NumPy reference: ranks and ties exact, logp within ``LOGP_ATOL``;
   V = 50257, 128256, 151936; bf16 and f32 logits; half the rows rounded to a coarse grid (many
   exact ties); each case with and without a ``vocab_limit``. The fused kernels get exactly
   computable operands (small integers: every dot is exact in float32, rounded once to the
   logits dtype), so they must equal the reference of those logits exactly;
2. **device rates, token statistics, fused head, proxy loss** with ``rce_kernels.bench``: copy
   bandwidth and bf16 matmul rate measured first (in each run); token statistics in GB/s and %
   of the copy bandwidth (pallas, xla, naive; bf16 at every V, f32 at the largest); the fused
   head in TFLOP/s and % of the matmul rate; proxy loss forward + backward against plain
   cross-entropy; peak memory; every row names what ran; the torch eager and
   ``torch.compile`` token-statistics baselines at the largest vocabulary where torch is
   installed;
3. **end to end**: ``rce_jax.bench.eval`` (``experiments/bench_eval.py``: ``rce-jax eval``
   against transformers with sdpa, bf16, at Pythia-1B size) with the statistics' share of the
   scoring step, when ``rce_jax`` is importable.

Writes ``DIR/device_check.json`` and ``DIR/device_check.md`` (atomically), prints the Markdown
last, and exits with status 1, after writing, if any correctness check failed (the failures
are listed first in the table and on stderr). ``--budget-s`` (default 360 s) bounds the run:
a section that would start after the budget is skipped and recorded as skipped. ``--tiny``
runs the same code on small shapes (the CPU tests run it). Sizing for one H100/H200: see
``docs/kernels.md`` ("device_check: sizing").
"""

from __future__ import annotations

import os

os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")  # torch shares the GPU

import argparse  # noqa: E402
import dataclasses  # noqa: E402
import datetime  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

from . import bench, bench_torch  # noqa: E402
from .bench_report import markdown as bench_markdown  # noqa: E402
from .dispatch import run_fused_token_stats, run_token_stats, token_stats  # noqa: E402
from .support import GPU_FUSED_DTYPES, Device  # noqa: E402

LOGP_ATOL = 1e-5  # the bar; float32 logp of ~-12 has ulp 1e-6, lse sums in float32


@dataclasses.dataclass(frozen=True)
class Sizes:
    check_T: int  # rows per correctness case
    check_V: tuple[int, ...]
    check_D: int  # hidden width of the fused correctness cases
    perf_T: int
    perf_V: tuple[int, ...]
    fused_V: tuple[int, ...]
    loss_V: tuple[int, ...]
    torch_V: tuple[int, ...]
    hidden: int
    repeats: int
    inner: int
    e2e: tuple[str, ...]  # arguments of rce_jax.bench.eval (experiments/bench_eval.py)


FULL = Sizes(check_T=512,  # T / k >= 64 super-rows for the GPU kernel at k = 8 (bf16, V = 50257)
             check_V=(50257, 128256, 151936), check_D=256, perf_T=16384,
             perf_V=(50257, 128256, 151936), fused_V=(50257, 151936), loss_V=(151936,),
             torch_V=(151936,), hidden=4096, repeats=5, inner=2,
             e2e=("--max-tokens", "131072", "--corpus", "python-code@all"))
TINY = Sizes(check_T=32, check_V=(1000, 4099), check_D=32, perf_T=128, perf_V=(1000,),
             fused_V=(1000,), loss_V=(1000,), torch_V=(1000,), hidden=32, repeats=1, inner=1,
             e2e=("--tiny", "--max-tokens", "1024", "--corpus", "python-docs@heldout"))


def kernel_impls(device: Device) -> tuple[str, ...]:
    """The dispatch names that run this device's kernels (the explicit names never fall back)."""
    if device.backend == "tpu" or (device.backend == "gpu" and device.hopper):
        return ("pallas",)
    if device.backend == "cpu":
        return ("pallas_interpret", "pallas_tpu_interpret")
    return ()


def reference_stats(z64_TxV, targets_T, limit):
    """float64 NumPy: logp = z_y - logsumexp(z[:limit]), rank = #{z > z_y}, ties = #{z == z_y}-1."""
    z = z64_TxV[:, :limit]
    rows = np.arange(len(targets_T))
    zy = z[rows, targets_T]
    m = z.max(axis=1)
    lse = m + np.log(np.exp(z - m[:, None]).sum(axis=1))
    rank = (z > zy[:, None]).sum(axis=1)
    ties = (z == zy[:, None]).sum(axis=1) - 1
    return zy - lse, rank, ties


def compare(name, out, ref, xla=None) -> dict:
    """One correctness record: exact ranks/ties and logp within LOGP_ATOL of the reference (and
    of the XLA path, when given)."""
    logp, rank, ties = (np.asarray(a) for a in out)
    r_logp, r_rank, r_ties = ref
    rec = {"case": name, "rank_mismatch": int((rank != r_rank).sum()),
           "ties_mismatch": int((ties != r_ties).sum()),
           "max_abs_dlogp": float(np.nanmax(np.abs(logp.astype(np.float64) - r_logp))),
           "nan_logp": int(np.isnan(logp).sum())}
    if xla is not None:
        x_logp, x_rank, x_ties = (np.asarray(a) for a in xla)
        rec["xla_rank_mismatch"] = int((rank != x_rank).sum() + (ties != x_ties).sum())
        rec["max_abs_dlogp_xla"] = float(np.nanmax(np.abs(logp - x_logp)))
    rec["ok"] = (rec["rank_mismatch"] == rec["ties_mismatch"] == rec["nan_logp"] == 0
                 and rec["max_abs_dlogp"] <= LOGP_ATOL
                 and rec.get("xla_rank_mismatch", 0) == 0
                 and rec.get("max_abs_dlogp_xla", 0.0) <= LOGP_ATOL)
    return rec


def _inputs(key, T, V, dtype):
    """Fresh logits with ties: normal * 3, every other row rounded to halves."""
    k1, k2 = jax.random.split(key)
    z = jax.random.normal(k1, (T, V), jnp.float32) * 3
    coarse = jnp.round(z * 2) / 2
    z = jnp.where((jnp.arange(T) % 2 == 0)[:, None], coarse, z).astype(dtype)
    return z, jax.random.randint(k2, (T,), 0, V)


def check_materialised(sizes: Sizes, impls, seed: int) -> list[dict]:
    records = []
    T = sizes.check_T
    for V in sizes.check_V:
        for dn, dt in (("bf16", jnp.bfloat16), ("f32", jnp.float32)):
            z, y = _inputs(jax.random.key(seed + V + len(dn)), T, V, dt)
            z64 = np.asarray(z.astype(jnp.float32), np.float64)
            for limit in (None, V - 57):
                lim = V if limit is None else limit
                yl = y % lim
                ref = reference_stats(z64, np.asarray(yl), lim)
                xla = token_stats(z, yl, vocab_limit=limit, impl="xla")
                records.append({**compare(f"xla T={T} V={V} {dn} limit={limit}", xla, ref),
                                "ran": "xla"})
                for impl in impls:
                    name = f"{impl} T={T} V={V} {dn} limit={limit}"
                    try:
                        out, plan = run_token_stats(z, yl, vocab_limit=limit, impl=impl)
                        records.append({**compare(name, out, ref, xla), "ran": plan.impl})
                    except Exception as e:  # a kernel that does not run is a failure here
                        records.append({"case": name, "ok": False,
                                        "error": f"{type(e).__name__}: {str(e)[:300]}"})
    return records


def check_fused(sizes: Sizes, impls, seed: int) -> list[dict]:
    records = []
    T, D = sizes.check_T, sizes.check_D
    for V in sizes.check_V:
        k1, k2, k3 = jax.random.split(jax.random.key(seed + 7 * V), 3)
        # Multiples of 1/8 in [-1/4, 1/4]: exact in bf16; every logit is k/64 with |k| <= 4 D,
        # exact in float32 whatever the summation order, and small (float32 logp stays exact
        # to ~1e-6 in absolute terms).
        h = jax.random.randint(k1, (T, D), -2, 3).astype(jnp.float32) / 8
        w = jax.random.randint(k2, (V, D), -2, 3).astype(jnp.float32) / 8
        y = jax.random.randint(k3, (T,), 0, V)
        exact = np.asarray(h, np.float64) @ np.asarray(w, np.float64).T
        for dn, dt in (("bf16", jnp.bfloat16), ("f32", jnp.float32)):
            for limit in (None, V - 57):
                lim = V if limit is None else limit
                yl = y % lim
                z64 = np.asarray(jnp.asarray(exact, jnp.float32).astype(dt).astype(jnp.float32),
                                 np.float64)
                ref = reference_stats(z64, np.asarray(yl), lim)
                hd, wd = h.astype(dt), w.astype(dt)
                xla = run_fused_token_stats(hd, wd, yl, vocab_limit=limit, impl="xla")[0]
                records.append({**compare(f"fused xla T={T} V={V} D={D} {dn} limit={limit}",
                                          xla, ref), "ran": "xla"})
                for impl in impls:
                    name = f"fused {impl} T={T} V={V} D={D} {dn} limit={limit}"
                    gpu_kernel = impl == "pallas_interpret" or (
                        impl == "pallas" and Device.default().backend == "gpu")
                    if gpu_kernel and jnp.dtype(dt).name not in GPU_FUSED_DTYPES:
                        records.append({"case": name, "ok": True, "skipped":
                                        "the GPU fused kernel takes 16-bit operands only"})
                        continue
                    try:
                        out, plan = run_fused_token_stats(hd, wd, yl, vocab_limit=limit,
                                                          impl=impl)
                        records.append({**compare(name, out, ref, xla), "ran": plan.impl})
                    except Exception as e:
                        records.append({"case": name, "ok": False,
                                        "error": f"{type(e).__name__}: {str(e)[:300]}"})
    return records


def _bench(out: Path, name: str, argv: list[str]) -> dict:
    return bench.main([*argv, "--out", str(out / name)])


def performance(sizes: Sizes, out: Path, tiny: bool) -> dict:
    """The benchmark sections (each a ``rce_kernels.bench`` run; rates measured in each)."""
    common = ["--repeats", str(sizes.repeats), "--inner", str(sizes.inner), "--T",
              str(sizes.perf_T), "--hidden", str(sizes.hidden)] + (["--quick"] if tiny else [])
    ints = lambda xs: ",".join(map(str, xs))
    runs = {"token_stats": ["--sections", "token_stats", "--V", ints(sizes.perf_V), "--dtypes",
                            "bf16", "--impls", "pallas,xla,naive"],
            "token_stats_f32": ["--sections", "token_stats", "--V", str(max(sizes.perf_V)),
                                "--dtypes", "f32", "--impls", "pallas,xla,naive"],
            "fused": ["--sections", "fused", "--V", ints(sizes.fused_V), "--dtypes", "bf16",
                      "--impls", "pallas,xla,materialised"],
            "loss": ["--sections", "loss", "--V", ints(sizes.loss_V), "--dtypes", "bf16"]}
    if bench_torch.available():
        runs["torch"] = ["--sections", "token_stats", "--V", ints(sizes.torch_V), "--dtypes",
                         "bf16", "--impls", "torch_eager,torch_compile"]
    return {name: (lambda argv=argv, name=name: _bench(out, name, common + argv))
            for name, argv in runs.items()}


def end_to_end(sizes: Sizes, out: Path):
    """``rce_jax.bench.eval`` (``experiments/bench_eval.py``) if rce_jax is installed, or why not."""
    import importlib.util

    if importlib.util.find_spec("rce_jax") is None:
        return {"skipped": "rce_jax is not importable (rce_kernels installed without it)"}
    from rce_jax.bench.eval import main

    argv = [*sizes.e2e, "--out", str(out / "bench_eval")]
    if not bench_torch.available():
        argv.append("--no-torch")
    return main(argv)


def report_markdown(result: dict) -> str:
    meta = result["meta"]
    lines = [f"# device_check: {meta['device']} ({meta['backend']}), JAX {meta['jax']}, "
             f"{meta['date']}", "",
             f"Correctness: **{'PASS' if result['passed'] else 'FAIL'}** "
             f"({sum(r['ok'] for r in result['correctness'])}/{len(result['correctness'])} "
             f"cases; ranks/ties exact, logp within {LOGP_ATOL:g} of float64 and of xla). "
             f"Seed {meta['seed']}. Wall time {meta['wall_s']:.0f} s.", "",
             "| case | ran | rank/ties mismatches | vs xla | max abs dlogp | status |",
             "|---|---|---:|---:|---:|---|"]
    order = sorted(result["correctness"], key=lambda r: r["ok"])  # failures first
    for r in order:
        status = "ok" if r["ok"] else "**FAIL** " + r.get("error", "")
        status = r.get("skipped", status)
        mism = (f"{r['rank_mismatch']}/{r['ties_mismatch']}" if "rank_mismatch" in r else "-")
        dlogp = f"{r['max_abs_dlogp']:.2e}" if "max_abs_dlogp" in r else "-"
        lines.append(f"| {r['case']} | {r.get('ran', '-')} | {mism} | "
                     f"{r.get('xla_rank_mismatch', '-')} | {dlogp} | {status} |")
    for name, section in result["performance"].items():
        lines += ["", f"## Benchmark: {name}", ""]
        if "skipped" in section or "error" in section:
            lines.append(section.get("skipped") or section["error"])
        else:
            lines.append(bench_markdown(section))
    e2e = result.get("end_to_end", {})
    lines += ["", "## End to end (experiments/bench_eval.py)", ""]
    if "rows" in e2e:
        lines += ["| what | seconds | tokens/s |", "|---|---:|---:|"]
        lines += [f"| {r['what']} | {r['seconds']:.3f} | {r['tokens_per_s']:,.0f} |"
                  for r in e2e["rows"]]
        lines += ["", f"Token statistics ran `{e2e.get('impl_resolved')}`; their share of the "
                  f"scoring step {e2e['statistics_share_of_step']:.1%}."]
    else:
        lines.append(e2e.get("skipped") or e2e.get("error", "not run"))
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m rce_kernels.device_check",
                                description=__doc__.split("\n")[0])
    p.add_argument("--out", required=True, help="folder for device_check.json / .md")
    p.add_argument("--tiny", action="store_true", help="small shapes (the CPU test runs this)")
    p.add_argument("--budget-s", type=float, default=360.0,
                   help="start no section after this many seconds (default 360: the last, end "
                        "to end, is estimated, not measured, at ~100 s on an H100; "
                        "docs/kernels.md)")
    p.add_argument("--seed", type=int, help="input seed (default: fresh, recorded)")
    args = p.parse_args(argv)
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise SystemExit(f"--out {out} exists and is not a folder")
    t0 = time.perf_counter()
    sizes = TINY if args.tiny else FULL
    seed = args.seed if args.seed is not None else int(np.random.default_rng().integers(1 << 30))
    device = Device.default()
    impls = kernel_impls(device)
    print(f"device_check on {jax.devices()[0].device_kind} ({device.backend}), kernels via "
          f"{impls or 'none (no kernel for this device)'}, seed {seed}", flush=True)

    correctness = check_materialised(sizes, impls, seed) + check_fused(sizes, impls, seed)
    failed = [r for r in correctness if not r["ok"]]
    print(f"correctness: {len(correctness) - len(failed)}/{len(correctness)} ok "
          f"({time.perf_counter() - t0:.0f} s)", flush=True)

    # Order: the kernels' own benchmarks, the torch baselines, then end to end (the longest
    # section; it starts only before the budget, docs/kernels.md has the arithmetic).
    runs = performance(sizes, out, args.tiny)
    runs["end_to_end"] = lambda: end_to_end(sizes, out)
    done = {}
    for name, run in runs.items():
        if time.perf_counter() - t0 > args.budget_s:
            done[name] = {"skipped": f"skipped: past the {args.budget_s:.0f} s budget"}
            continue
        try:
            done[name] = run()
        except Exception as e:  # recorded; the correctness verdict stands on its own
            done[name] = {"error": f"{type(e).__name__}: {str(e)[:300]}"}
        print(f"{name} done ({time.perf_counter() - t0:.0f} s)", flush=True)
    e2e = done.pop("end_to_end")
    perf = done

    result = {"meta": {"date": datetime.datetime.now(datetime.timezone.utc).isoformat(
                           timespec="seconds"),
                       "device": jax.devices()[0].device_kind, "backend": device.backend,
                       "compute_capability": device.compute_capability, "jax": jax.__version__,
                       "torch": bench_torch.version(), "tiny": args.tiny, "seed": seed,
                       "sizes": dataclasses.asdict(sizes), "kernel_impls": list(impls),
                       "wall_s": time.perf_counter() - t0},
              "passed": not failed, "correctness": correctness, "performance": perf,
              "end_to_end": e2e}
    text = report_markdown(result)
    bench.write_atomic(out / "device_check.json",
                       json.dumps(result, indent=2, default=str) + "\n")
    bench.write_atomic(out / "device_check.md", text)
    print(text, flush=True)
    if failed:
        print(f"device_check: CORRECTNESS FAILED in {len(failed)} case(s): "
              + "; ".join(r["case"] for r in failed), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
