"""The compiled scoring step: packed batch -> model -> token statistics -> per-rank sums.

The model runs under ``jit`` with its parameters sharded by the family's rules and the batch
sharded on the mesh's ``data`` axis. The token statistics run inside ``shard_map`` over
``data`` (``rce_kernels.shard_rows``, shared with the proxy loss): each device scores its own
rows (a Pallas kernel is a custom call that XLA cannot partition by itself) against the whole
LM head, and the per-rank sums are ``psum``-ed, so every device and host ends with the same
replicated batch sums. ``kernel_plan`` says which implementation the step runs.
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
import rce_kernels
from flax import nnx
from jax.sharding import Mesh
from rce_kernels.rank_sums import batch_rank_sums

from ..sharding import DATA
from .profile import profile_sums


@dataclasses.dataclass(frozen=True)
class ScoreOptions:
    """What the step computes; hashable, so it is a static argument of the compiled step.

    ``vocab_limit``: rank and normalise over the first ``vocab_limit`` head rows (None: all).
    ``fused``: token statistics straight from hidden states and the head (no [T, V] logits);
    score profiles need the logits, so ``profile_ranks`` forces the materialised path.
    ``logits_dtype``: the precision the logits are ranked in (None: the model's compute dtype,
    as the model produces them).
    """

    vocab_limit: int | None = None
    impl: str = "auto"
    fused: bool = True
    logits_dtype: str | None = None
    profile_ranks: tuple[int, ...] = ()
    profile_top_k: int = 16
    token_outputs: bool = False  # also return each token's (rank, log s), for the bootstrap

    @classmethod
    def of(cls, config, *, vocab_limit: int | None = None) -> ScoreOptions:
        """The options of an ``EvalConfig`` (``vocab_limit``: from the model and tokenizer)."""
        return cls(vocab_limit=vocab_limit, impl=config.impl, fused=config.fused,
                   logits_dtype="float32" if config.upcast_logits else None,
                   profile_ranks=tuple(config.profile_ranks), profile_top_k=config.profile_top_k,
                   token_outputs=bool(config.bootstrap))


def _token_sums(hidden_TxE, head_VxE, targets_T, mask_T, *, options: ScoreOptions, compute_dtype,
                axis: str | None, record=None):
    """Per-rank sums (and profile sums) of one shard of rows; psum over ``axis`` if given.
    ``record`` (a list) receives the ``rce_kernels.KernelPlan`` of what runs."""
    V = head_VxE.shape[0]
    limit = V if options.vocab_limit is None else options.vocab_limit
    logits_dtype = jnp.dtype(options.logits_dtype or compute_dtype)
    targets_T = jnp.where(mask_T, targets_T, 0)
    prof = None
    if options.fused and not options.profile_ranks:
        stats, plan = rce_kernels.run_fused_token_stats(
            hidden_TxE.astype(compute_dtype), head_VxE.astype(compute_dtype), targets_T,
            vocab_limit=options.vocab_limit, logits_dtype=logits_dtype, impl=options.impl)
    else:
        logits = jnp.einsum("te,ve->tv", hidden_TxE.astype(compute_dtype),
                            head_VxE.astype(compute_dtype),
                            preferred_element_type=jnp.float32).astype(logits_dtype)
        stats, plan = rce_kernels.run_token_stats(logits, targets_T,
                                                  vocab_limit=options.vocab_limit,
                                                  impl=options.impl)
        if options.profile_ranks:
            prof = profile_sums(logits[:, :limit], stats.rank, mask_T, ranks=options.profile_ranks,
                                top_k=options.profile_top_k)
    if record is not None:
        record.append(plan)
    sums = batch_rank_sums(stats.logp, stats.rank, stats.ties, mask_T, vocab_size=limit)
    tokens = (stats.rank, stats.logp) if options.token_outputs else None
    if axis is not None:
        sums, prof = jax.lax.psum((sums, prof), axis)
    return sums, prof, tokens


def _score(graphdef, state, batch: dict, *, options: ScoreOptions, mesh: Mesh | None,
           record=None):
    model = nnx.merge(graphdef, state)
    hidden_BxLxE = model.hidden_states(batch["input_ids"], positions_BxL=batch["positions"],
                                       segment_ids_BxL=batch["segment_ids"])
    head_VxE, bias = model.lm_head()
    if bias is not None:
        raise ValueError("LM heads with a bias are not supported by the scoring step")
    E = hidden_BxLxE.shape[-1]
    args = (hidden_BxLxE.reshape(-1, E), head_VxE, batch["target_ids"].reshape(-1),
            batch["score_mask"].reshape(-1))
    fn = functools.partial(_token_sums, options=options, compute_dtype=model.dtype, record=record)
    # Rows (hidden, targets, mask) split over 'data', the head replicated: rce_kernels.mesh.
    # Per-token outputs (for the bootstrap) stay split by rows; the sums are psum-ed.
    return rce_kernels.shard_rows(fn, mesh, DATA, rows=(True, False, True, True),
                                  out_rows=(False, False, True))(*args)


@functools.partial(jax.jit, static_argnames=("graphdef", "options", "mesh"))
def score_batch(graphdef, state, batch: dict, *, options: ScoreOptions, mesh: Mesh | None):
    """``(BatchRankSums, profile sums or None, per-token (rank, log s) or None)`` of one packed
    batch (the placed model inputs of an rce_jax.data.Batch, ``rce_jax.sharding.shard_batch``);
    the per-token arrays only with ``options.token_outputs``."""
    return _score(graphdef, state, batch, options=options, mesh=mesh)


def kernel_plan(graphdef, state, batch: dict, *, options: ScoreOptions, mesh: Mesh | None):
    """The ``rce_kernels.KernelPlan`` that ``score_batch`` runs on batches shaped like ``batch``
    (arrays or ``jax.ShapeDtypeStruct``): the step is traced abstractly (``jax.eval_shape``, no
    computation) with the same code, shapes and per-device rows, and the token-statistics
    dispatch reports the plan it executes."""
    record = []
    jax.eval_shape(functools.partial(_score, graphdef, options=options, mesh=mesh,
                                     record=record), state, batch)
    (plan,) = set(record)
    return plan
