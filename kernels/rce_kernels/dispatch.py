"""One entry point for every token-statistics implementation, materialised and fused, that
returns the statistics together with what ran.

``impl`` names:

* ``"auto"``: the Pallas kernel of the default backend (Mosaic TPU; Mosaic GPU on CUDA compute
  capability 9.x) when its declaration (``support.SUPPORT``) takes the input, else ``"xla"``;
  the refused kernel and its reason are recorded in the plan (``KernelPlan.skipped``) and
  warned about once per process;
* ``"xla"``: the streaming pure-JAX implementation (any backend);
* ``"naive"``: the obvious jnp version (materialised logits only; benchmarks and reference);
* ``"pallas"``: the Pallas kernel of the default backend; never falls back: raises
  ``UnsupportedShapeError`` (a ValueError) naming the reason when it cannot run;
* ``"pallas_interpret"``: the GPU kernel's code in Pallas' GPU interpret mode, on any backend
  (what the CPU tests run; slow);
* ``"pallas_tpu_interpret"``: the TPU kernel's code in Pallas' interpret mode, on any backend.

The plan (``plan_token_stats`` / ``plan_fused_token_stats``) is a function of the static input
description and the device only, and ``run_*`` execute exactly the plan they make, so a plan
made for the same shapes (for example inside ``jax.eval_shape`` of a whole step) is what runs.
"""

from __future__ import annotations

import dataclasses
import warnings

import chex
import jax.numpy as jnp

from .fused import fused_token_stats_xla
from .fused_gpu import fused_token_stats_mgpu
from .fused_tpu import fused_token_stats_tpu
from .reference import TokenStats, token_stats_naive, token_stats_xla
from .support import SUPPORT, Device, Problem, UnsupportedShapeError, interpret_gpu_blocks
from .token_stats_gpu import token_stats_mgpu
from .token_stats_tpu import token_stats_tpu

IMPLS = ("auto", "xla", "naive", "pallas", "pallas_interpret", "pallas_tpu_interpret")
_PALLAS_OF_BACKEND = {"gpu": "pallas_gpu", "tpu": "pallas_tpu"}
_warned: set = set()


def available_impls() -> tuple[str, ...]:
    return IMPLS


@dataclasses.dataclass(frozen=True)
class KernelPlan:
    """What a call runs: ``impl`` (concrete: ``xla``, ``naive``, ``pallas_gpu``, ``pallas_tpu``,
    ``pallas_interpret``, ``pallas_tpu_interpret``), the ``requested`` name, and under ``auto``
    the implementations ``skipped`` before it, as ``(name, reason)`` pairs."""

    entry: str  # "token_stats" or "fused_token_stats"
    requested: str
    impl: str
    skipped: tuple[tuple[str, str], ...] = ()

    def record(self) -> dict:
        """The fields result files, benchmark rows and training logs carry."""
        return {"impl": self.requested, "impl_ran": self.impl,
                "impl_skipped": {name: reason for name, reason in self.skipped}}


def _plan(entry: str, problem: Problem, impl: str, device: Device | None) -> KernelPlan:
    if impl not in IMPLS:
        raise ValueError(f"unknown token-stats impl {impl!r}; choose one of {IMPLS}")
    device = device or Device.default()
    if impl == "auto":
        skipped = []
        pallas = _PALLAS_OF_BACKEND.get(device.backend)
        for name in ((pallas,) if pallas else ()) + ("xla",):
            reason = SUPPORT[name].why_not(problem, device)
            if reason is None:
                return KernelPlan(entry, impl, name, tuple(skipped))
            skipped.append((name, reason))
        raise AssertionError("the xla path takes every input")  # pragma: no cover
    name = impl
    if impl == "pallas":
        name = _PALLAS_OF_BACKEND.get(device.backend)
        if name is None:
            raise UnsupportedShapeError(
                f"impl='pallas': no Pallas kernel compiles for the {device.backend!r} backend; "
                "use impl='xla' or impl='pallas_interpret'")
    reason = SUPPORT[name].why_not(problem, device)
    if reason is not None:
        raise UnsupportedShapeError(f"impl={impl!r} ({name}) cannot run: {reason}")
    return KernelPlan(entry, impl, name)


def plan_token_stats(shape, dtype, *, vocab_limit=None, impl="auto",
                     device: Device | None = None) -> KernelPlan:
    """The plan for logits of ``shape`` [T, V] and ``dtype`` (raises for an explicit ``impl``
    that cannot take them)."""
    T, V = shape
    return _plan("token_stats", Problem(T, V, jnp.dtype(dtype).name, vocab_limit), impl, device)


def plan_fused_token_stats(hidden_shape, head_shape, hidden_dtype, head_dtype, *,
                           vocab_limit=None, impl="auto", device: Device | None = None):
    """The plan for hidden [T, D] and head [V, D] (see ``plan_token_stats``)."""
    (T, D), V = hidden_shape, head_shape[0]
    problem = Problem(T, V, jnp.dtype(hidden_dtype).name, vocab_limit, D,
                      jnp.dtype(head_dtype).name)
    return _plan("fused_token_stats", problem, impl, device)


def _announce(plan: KernelPlan) -> None:
    """One warning per process for each distinct fallback under ``auto``."""
    if plan.skipped and plan not in _warned:
        _warned.add(plan)
        why = "; ".join(f"{name}: {reason}" for name, reason in plan.skipped)
        warnings.warn(f"rce_kernels {plan.entry}: impl='auto' runs {plan.impl} ({why})",
                      stacklevel=3)


def check_token_stats_args(logits_TxV, targets_T) -> None:
    """The materialised entry's contract: floating logits [T, V], integer targets [T]. chex
    checks shapes and dtypes when the call is traced (nothing in the compiled program) and
    raises ValueError naming the arrays."""
    what = dict(exception_type=ValueError)
    chex.assert_rank([logits_TxV, targets_T], [2, 1], custom_message="logits_TxV [T, V], targets_T [T]", **what)
    chex.assert_type([logits_TxV, targets_T], [float, int],
                     custom_message="logits_TxV floating point, targets_T integers", **what)
    chex.assert_equal_shape_prefix([logits_TxV, targets_T], 1,
                                   custom_message="T of logits_TxV [T, V] and targets_T [T]", **what)


def check_fused_token_stats_args(hidden_TxD, head_VxD, targets_T, bias_V=None) -> None:
    """The fused entry's contract: floating hidden [T, D] and head [V, D], integer targets [T],
    floating bias [V] if any (chex, at trace time; ValueError naming the arrays)."""
    what = dict(exception_type=ValueError)
    chex.assert_rank([hidden_TxD, head_VxD, targets_T], [2, 2, 1],
                     custom_message="hidden_TxD [T, D], head_VxD [V, D], targets_T [T]", **what)
    chex.assert_type([hidden_TxD, head_VxD, targets_T], [float, float, int],
                     custom_message="hidden_TxD and head_VxD floating point, targets_T integers", **what)
    chex.assert_equal_shape_prefix([hidden_TxD, targets_T], 1,
                                   custom_message="T of hidden_TxD [T, D] and targets_T [T]", **what)
    chex.assert_equal_shape_suffix([hidden_TxD, head_VxD], 1,
                                   custom_message="D of hidden_TxD [T, D] and head_VxD [V, D]", **what)
    if bias_V is not None:
        chex.assert_shape(bias_V, head_VxD.shape[:1], custom_message="bias_V [V] of head_VxD [V, D]", **what)
        chex.assert_type(bias_V, float, custom_message="bias_V floating point", **what)


def run_token_stats(logits_TxV, targets_T, *, vocab_limit=None, impl="auto"):
    """``(TokenStats, KernelPlan)`` of ``logits_TxV`` [T, V] against ``targets_T`` [T]
    (semantics: reference.py)."""
    check_token_stats_args(logits_TxV, targets_T)
    T, V = logits_TxV.shape
    plan = plan_token_stats(logits_TxV.shape, logits_TxV.dtype, vocab_limit=vocab_limit,
                            impl=impl)
    _announce(plan)
    kind = plan.impl
    if kind == "pallas_gpu":
        out = token_stats_mgpu(logits_TxV, targets_T, vocab_limit=vocab_limit)
    elif kind == "pallas_tpu":
        out = token_stats_tpu(logits_TxV, targets_T, vocab_limit=vocab_limit)
    elif kind == "pallas_interpret":
        out = token_stats_mgpu(logits_TxV, targets_T, vocab_limit=vocab_limit, interpret=True,
                               **interpret_gpu_blocks(T, V, logits_TxV.dtype))
    elif kind == "pallas_tpu_interpret":
        out = token_stats_tpu(logits_TxV, targets_T, vocab_limit=vocab_limit, interpret=True)
    elif kind == "naive":
        out = token_stats_naive(logits_TxV, targets_T, vocab_limit=vocab_limit)
    else:
        out = token_stats_xla(logits_TxV, targets_T, vocab_limit=vocab_limit)
    return out, plan


def token_stats(logits_TxV, targets_T, *, vocab_limit=None, impl="auto") -> TokenStats:
    """The statistics of ``run_token_stats`` without the plan."""
    return run_token_stats(logits_TxV, targets_T, vocab_limit=vocab_limit, impl=impl)[0]


def run_fused_token_stats(hidden_TxD, head_VxD, targets_T, *, bias_V=None, vocab_limit=None,
                          logits_dtype=None, impl="auto", precision=None, return_lse=False):
    """``(stats, KernelPlan)`` of the logits ``hidden @ head.T + bias`` (float32 accumulation,
    rounded once to ``logits_dtype``, default the hidden dtype) without materialising them;
    ``stats`` is ``TokenStats``, or ``(TokenStats, lse_T)`` with ``return_lse``.

    ``precision`` (a ``jax.lax.Precision``) applies to the XLA and TPU paths; the GPU kernel
    multiplies 16-bit operands on the tensor cores.
    """
    check_fused_token_stats_args(hidden_TxD, head_VxD, targets_T, bias_V)
    plan = plan_fused_token_stats(hidden_TxD.shape, head_VxD.shape, hidden_TxD.dtype,
                                  head_VxD.dtype, vocab_limit=vocab_limit, impl=impl)
    _announce(plan)
    opts = dict(vocab_limit=vocab_limit, logits_dtype=logits_dtype, return_lse=return_lse)
    args = (hidden_TxD, head_VxD, targets_T, bias_V)
    kind = plan.impl
    if kind == "pallas_gpu":
        out = fused_token_stats_mgpu(*args, **opts)
    elif kind == "pallas_tpu":
        out = fused_token_stats_tpu(*args, precision=precision, **opts)
    elif kind == "pallas_interpret":
        out = fused_token_stats_mgpu(*args, interpret=True, **opts)
    elif kind == "pallas_tpu_interpret":
        out = fused_token_stats_tpu(*args, interpret=True, precision=precision, **opts)
    else:
        out = fused_token_stats_xla(*args, precision=precision, **opts)
    return out, plan


def fused_token_stats(hidden_TxD, head_VxD, targets_T, *, bias_V=None, vocab_limit=None,
                      logits_dtype=None, impl="auto", precision=None, return_lse=False):
    """The statistics of ``run_fused_token_stats`` without the plan."""
    return run_fused_token_stats(hidden_TxD, head_VxD, targets_T, bias_V=bias_V,
                                 vocab_limit=vocab_limit, logits_dtype=logits_dtype, impl=impl,
                                 precision=precision, return_lse=return_lse)[0]
