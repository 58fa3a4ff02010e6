"""The kernels on a device mesh: each device runs them on its own rows.

A Pallas kernel is a custom call that XLA cannot partition: under plain ``jit`` with sharded
logits it would gather the whole operand onto every device. ``shard_rows`` runs a function
inside ``jax.shard_map`` instead: arguments marked as rows are split along their first axis over
the mesh axis ``axis`` (rows are independent), the others (the LM head, its bias) are
replicated, and the function itself combines its per-device results with ``lax.psum`` over
``axis`` (it is called with ``axis=`` that name), so every output is replicated. Evaluation
(``rce_jax.evaluate.step``) and training (``rce_jax.losses`` through ``proxy_loss``) use it.
"""

from __future__ import annotations

import functools

import jax
from jax.sharding import Mesh
from jax.sharding import PartitionSpec as P


def shard_rows(fn, mesh: Mesh | None, axis: str, rows: tuple[bool, ...],
               out_rows: tuple[bool, ...] | None = None):
    """``fn(*args, axis=...)`` per shard of rows of ``mesh`` along ``axis``; ``rows[i]`` says
    whether argument ``i`` is split by rows (else replicated). Without a mesh, or with a
    one-device ``axis``, ``fn`` runs once with ``axis=None``. Outputs are replicated (psum-ed
    by ``fn``), except where ``out_rows`` (one flag per output of a tuple-returning ``fn``)
    marks a per-row output, which comes back split by rows like the arguments."""
    if mesh is None or mesh.shape.get(axis, 1) == 1:
        return functools.partial(fn, axis=None)
    in_specs = tuple(P(axis) if split else P() for split in rows)
    # check_vma=False: the kernels' loop carries start from constants, which the checker types
    # as invariant across `axis` while the loop makes them vary; the outputs are psum-ed over
    # `axis`, so P() (replicated) holds for them.
    out_specs = P() if out_rows is None else tuple(P(axis) if r else P() for r in out_rows)
    return jax.shard_map(functools.partial(fn, axis=axis), mesh=mesh, in_specs=in_specs,
                         out_specs=out_specs, check_vma=False)
