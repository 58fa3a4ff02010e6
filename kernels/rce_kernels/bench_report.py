"""Markdown report of a ``rce_kernels.bench`` run (tables of the JSON records)."""

from __future__ import annotations


def _ms(r):
    return f"{1e3 * r['seconds']:.3f}" if "seconds" in r else "-"


def _mib(n):
    return "-" if n is None else f"{n / 2**20:.0f}"


def _f(x, fmt="{:.1f}"):
    return "-" if x is None else fmt.format(x)


def _table(header, rows):
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(out)


def _note(r):
    """The error, else what ran when it is not the row's name (``auto``), with skip reasons."""
    if "error" in r:
        return r["error"]
    ran = r.get("ran")
    if ran and ran != r["impl"]:
        skipped = "; ".join(f"{k}: {v}" for k, v in r.get("skipped", {}).items())
        return f"ran {ran}" + (f" ({skipped})" if skipped else "")
    return r.get("torch_device", "")


def token_stats_table(records, rates):
    best_xla = {}
    for r in records:
        if r["impl"] in ("xla", "naive") and "seconds" in r:
            key = (r["T"], r["V"], r["dtype"])
            best_xla[key] = min(best_xla.get(key, float("inf")), r["seconds"])
    rows = []
    for r in records:
        base = best_xla.get((r["T"], r["V"], r["dtype"]))
        speedup = base / r["seconds"] if base and "seconds" in r else None
        floor_ms = 1e3 * r["bytes"] / (rates["copy_gbps"] * 1e9)
        rows.append([r["T"], r["V"], r["dtype"], r["impl"], _ms(r), f"{floor_ms:.3f}",
                     _f(r.get("gbps")), _f(r.get("pct_bandwidth")), _f(speedup, "{:.2f}x"),
                     _mib(r.get("peak_bytes")), _note(r)])
    header = ["T", "V", "dtype", "impl", "ms", "floor ms", "GB/s", "% copy bw",
              "vs best XLA", "peak MiB", "note"]
    return _table(header, rows)


def fused_table(records, rates):
    rows = []
    for r in records:
        floor_ms = 1e3 * r["flops"] / (rates["matmul_tflops"] * 1e12)
        rows.append([r["T"], r["V"], r["d"], r["dtype"], r["impl"], _ms(r), f"{floor_ms:.3f}",
                     _f(r.get("tflops"), "{:.2f}"), _f(r.get("pct_matmul")),
                     _mib(r.get("peak_bytes")), _note(r)])
    header = ["T", "V", "d", "dtype", "impl", "ms", "floor ms", "TFLOP/s", "% matmul",
              "peak MiB", "note"]
    return _table(header, rows)


def loss_table(records):
    ref = {}
    for r in records:
        if "seconds" in r:
            ref[(r["T"], r["V"], r["dtype"], r["impl"])] = r["seconds"]
    baseline = {"proxy": "ce", "proxy_fused": "ce_materialised"}
    rows = []
    for r in records:
        base = ref.get((r["T"], r["V"], r["dtype"], baseline.get(r["impl"], "")))
        ratio = r["seconds"] / base if base and "seconds" in r else None
        rows.append([r["T"], r["V"], r.get("d") or "-", r["dtype"], r["impl"], _ms(r),
                     _f(ratio, "{:.2f}x"), _mib(r.get("peak_bytes")), _note(r)])
    header = ["T", "V", "d", "dtype", "impl (fwd+bwd)", "ms", "vs CE", "peak MiB", "note"]
    return _table(header, rows)


def markdown(result) -> str:
    m, rates = result["meta"], result["rates"]
    parts = [
        "# rce_kernels benchmark",
        "",
        f"{m['date']} on {m['device']} ({m['backend']}), JAX {m['jax']}, torch {m['torch']}; "
        f"median of {m['repeats']} x {m['inner']} calls{' (--quick)' if m['quick'] else ''}.",
        "",
        f"Measured copy bandwidth: {rates['copy_gbps']:.1f} GB/s (read + write of "
        f"{rates['copy_bytes'] / 2**20:.0f} MiB); bf16 matmul "
        f"{'x'.join(map(str, rates['matmul_shape']))}: {rates['matmul_tflops']:.2f} TFLOP/s.",
        "Floors: bytes moved / copy bandwidth (token statistics), 2 T V d / matmul rate (fused).",
    ]
    if "token_stats" in result:
        parts += ["", "## Token statistics (materialised logits)", "",
                  token_stats_table(result["token_stats"], rates)]
    if "fused" in result:
        parts += ["", "## Fused LM head + token statistics", "",
                  fused_table(result["fused"], rates)]
    if "loss" in result:
        parts += ["", "## Proxy loss vs cross-entropy, forward + backward", "",
                  loss_table(result["loss"])]
    return "\n".join(parts) + "\n"
