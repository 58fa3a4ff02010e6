"""PyTorch baselines for the kernel benchmark (eager and ``torch.compile``), used when torch is
installed. They run on CUDA when JAX runs on a GPU and torch sees one, else on the CPU."""

from __future__ import annotations

import importlib.util
import statistics
import time

import numpy as np


def available() -> bool:
    """Whether torch is installed (found without importing it)."""
    return importlib.util.find_spec("torch") is not None


def _token_stats(z, y):
    import torch

    zf = z.float()
    z_y = zf.gather(1, y[:, None])
    logp = z_y[:, 0] - torch.logsumexp(zf, dim=1)
    rank = (zf > z_y).sum(dim=1)
    ties = (zf == z_y).sum(dim=1) - 1
    return logp, rank, ties


def device(jax_backend: str) -> str:
    import torch

    return "cuda" if jax_backend == "gpu" and torch.cuda.is_available() else "cpu"


def time_token_stats(T, V, dtype_name, *, compiled, jax_backend, repeats, inner, seed=0):
    """Median seconds per call of the torch token statistics, and the peak CUDA memory it
    allocated (None on CPU). The result is checked against a float64 NumPy computation on a few
    rows, so the baseline is a correct one."""
    import torch

    dev = device(jax_backend)
    dt = {"bf16": torch.bfloat16, "f32": torch.float32}[dtype_name]
    gen = torch.Generator(device=dev).manual_seed(seed)
    z = torch.randn(T, V, generator=gen, device=dev).to(dt)
    y = torch.randint(0, V, (T,), generator=gen, device=dev)
    fn = torch.compile(_token_stats) if compiled else _token_stats
    sync = torch.cuda.synchronize if dev == "cuda" else (lambda: None)
    if dev == "cuda":
        torch.cuda.reset_peak_memory_stats()
    out = fn(z, y)
    sync()
    rows = z[:4].float().cpu().numpy().astype(np.float64)
    yy = y[:4].cpu().numpy()
    z_y = rows[np.arange(4), yy]
    m = rows.max(1)
    want = z_y - (m + np.log(np.exp(rows - m[:, None]).sum(1)))
    if not np.allclose(out[0][:4].cpu().numpy(), want, atol=1e-4):
        raise RuntimeError("torch baseline disagrees with float64 NumPy")
    if not (out[1][:4].cpu().numpy() == (rows > z_y[:, None]).sum(1)).all():
        raise RuntimeError("torch baseline ranks disagree with NumPy")
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(inner):
            out = fn(z, y)
        sync()
        times.append((time.perf_counter() - t0) / inner)
    peak = torch.cuda.max_memory_allocated() if dev == "cuda" else None
    del z, y, out
    if dev == "cuda":
        torch.cuda.empty_cache()
    return statistics.median(times), peak, dev


def version() -> str | None:
    if not available():
        return None
    import torch

    return torch.__version__
