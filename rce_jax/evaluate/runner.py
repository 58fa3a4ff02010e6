"""``evaluate``: one model on one corpus -> the decomposition, word/byte metrics, a result file.

corpus -> the model's tokenizer (cached) -> lm-eval rolling windows -> packed batches -> the
compiled scoring step -> per-batch rank sums -> host RankStats (resumable) -> result JSON.
``score_plan`` is the loop itself, shared with the trainer's periodic evaluation.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import platform
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from tqdm.auto import tqdm

from .. import __version__
from ..data import load_corpus, plan_batches, tokenize_corpus
from ..io import write_json
from ..plots import slug
from ..stats import TIE_RULE, RankStats
from .profile import ProfileStats
from .resume import EvalState
from ..sharding import DATA, check_hosts_agree, shard_batch
from .step import ScoreOptions, kernel_plan, score_batch

EVAL_DTYPES = ("auto", "float32", "bfloat16", "float16")  # auto: models.stored_dtype
RESULT_SCHEMA = "rce-jax/eval-result"
RESULT_VERSION = 1


@dataclasses.dataclass(frozen=True)
class EvalConfig:
    """Settings of an evaluation. Those that change the numbers are recorded in the result and
    must match for a partial run to be resumed."""

    context_length: int
    batch_size: int = 8  # global rows per step
    max_tokens: int | None = None  # stop after the document that reaches this many tokens
    dtype: str = "auto"  # the model's computation and parameter dtype; auto: the checkpoint's
    impl: str = "auto"  # token-stats implementation (rce_kernels.available_impls())
    fused: bool = True  # statistics from hidden states and head, never writing [T, V] logits
    rank_vocab: str = "model"  # "model": every head row; "tokenizer": the tokenizer's entries
    upcast_logits: bool = False  # rank float32 logits instead of the model's own dtype
    packing: str = "first_fit"
    profile_ranks: tuple[int, ...] = ()
    profile_top_k: int = 16
    checkpoint_every: int = 20  # batches between resumable snapshots
    text_field: str = "text"
    model_parallel: int = 1  # size of the mesh's 'model' axis

    def __post_init__(self):
        if self.context_length < 1:
            raise ValueError(f"context length must be positive, got {self.context_length}")
        if self.batch_size < 1 or self.checkpoint_every < 1:
            raise ValueError("batch size and checkpoint interval must be positive")
        if self.model_parallel < 1 or self.profile_top_k < 1:
            raise ValueError("model_parallel and profile_top_k must be positive")
        if self.rank_vocab not in ("model", "tokenizer"):
            raise ValueError(f"rank_vocab must be 'model' or 'tokenizer', got {self.rank_vocab!r}")
        if self.dtype not in EVAL_DTYPES:
            raise ValueError(f"--dtype must be one of {', '.join(EVAL_DTYPES)}, got {self.dtype!r}")


def score_plan(plan, graphdef, state, options: ScoreOptions, mesh, *, stats: RankStats,
               profile: ProfileStats | None = None, start_batch: int = 0, on_batch=None,
               progress: bool = True, desc: str = "eval") -> None:
    """Score batches ``start_batch..`` of ``plan`` into ``stats`` (and ``profile``), in place.

    One step stays in flight while the host builds the next batch and folds the previous sums.
    ``on_batch(next_batch)`` is called after each batch's sums are folded in.
    """
    process = jax.process_index()
    bar = tqdm(total=plan.num_scored_tokens, initial=stats.n_tokens, unit="tok", unit_scale=True,
               desc=desc, disable=not progress or process != 0, dynamic_ncols=True)
    pending = None

    def fold(item):
        index, out = item
        sums, prof = out
        stats.add_batch(sums, where=f"batch {index}")
        if profile is not None:
            profile.add(*prof)
        bar.update(int(np.asarray(sums.count_V).sum()))
        if on_batch is not None:
            on_batch(index + 1)

    for batch in plan.iter_batches(start_batch):
        arrays = shard_batch(batch.model_inputs(), mesh)
        out = score_batch(graphdef, state, arrays, options=options, mesh=mesh)
        if pending is not None:
            fold(pending)
        pending = (batch.index, out)
    if pending is not None:
        fold(pending)
    bar.close()


def _versions() -> dict:
    import flax
    import transformers

    return {"rce_jax": __version__, "jax": jax.__version__, "flax": flax.__version__,
            "transformers": transformers.__version__, "python": platform.python_version(),
            "backend": jax.default_backend(), "device_kind": jax.devices()[0].device_kind,
            "device_count": jax.device_count(), "process_count": jax.process_count()}


def dataset_label(dataset: str) -> str:
    """A short name for file names: a local corpus by its file or folder name, others as named."""
    if dataset.startswith("tfds:") or "/" not in dataset:
        return dataset
    return Path(dataset.rstrip("/")).name


def result_path(out_dir, model_name: str, dataset: str) -> Path:
    """Where the result of ``model_name`` on ``dataset`` is written."""
    return Path(out_dir) / f"{slug(model_name)}__{slug(dataset_label(dataset))}.json"


def evaluate(model_path, data_spec: str, out_dir, config: EvalConfig, *, split=None,
             model_name: str | None = None, family: str | None = None, cache_dir=None,
             force: bool = False, progress: bool = True) -> dict:
    """Evaluate one model directory on one corpus; write and return the result.

    ``family`` labels the model's family for the scaling fits (default: its architecture, which
    the result keeps as ``architecture``; e.g. DistilGPT2 is a ``gpt2`` architecture but its own
    family in the paper). An existing result of the same model, corpus and settings is returned as is unless
    ``force`` (one made from other inputs under the same file name is a ValueError); a partial
    run of the same settings is resumed. The result file appears only when the run is complete.
    """
    from ..models import from_pretrained, param_counts, stored_dtype
    from ..sharding import make_mesh

    if config.dtype == "auto":  # the checkpoint's own dtype, as transformers and lm-eval load it
        config = dataclasses.replace(config, dtype=stored_dtype(model_path))

    model_name = model_name or Path(str(model_path).rstrip("/")).name
    t0 = time.perf_counter()
    corpus = load_corpus(data_spec, split=split, text_field=config.text_field)
    out_file = result_path(out_dir, model_name, corpus.name)
    # What decides the numbers; an existing result is reused only if it was made from the same.
    requested = {"model": str(model_path), "corpus_fingerprint": corpus.fingerprint,
                 "context_length": config.context_length, "max_tokens": config.max_tokens,
                 "dtype": config.dtype,
                 "ranked_logits_dtype": "float32" if config.upcast_logits else config.dtype,
                 "rank_vocab": config.rank_vocab, "profile_ranks": list(config.profile_ranks),
                 "profile_top_k": config.profile_top_k}
    if out_file.exists() and not force:
        existing = json.loads(out_file.read_text())
        old = existing.get("settings", {})
        changed = [k for k in requested if old.get(k) != requested[k]]
        if changed:
            detail = ", ".join(f"{k}: {old.get(k)!r} there, {requested[k]!r} now" for k in changed)
            raise ValueError(f"{out_file} holds the result of another model, corpus or settings "
                             f"({detail}); use --force to overwrite it or choose another --out")
        print(f"[rce-jax eval] {out_file} exists; skipping (use --force to recompute)")
        return existing
    mesh = make_mesh(model=config.model_parallel) if jax.device_count() > 1 else None
    data_devices = mesh.shape[DATA] if mesh is not None else 1
    if config.batch_size % data_devices:  # before loading anything
        raise ValueError(f"batch size {config.batch_size} does not split over the "
                         f"{data_devices} data-parallel devices")
    model, mconfig, tokenizer = from_pretrained(model_path, dtype=jnp.dtype(config.dtype), mesh=mesh)
    if tokenizer is None:
        raise ValueError(f"{model_path}: the model directory has no tokenizer files")
    if config.context_length > mconfig.max_position_embeddings:
        raise ValueError(f"context length {config.context_length} exceeds the model's maximum "
                         f"{mconfig.max_position_embeddings} (max_position_embeddings)")
    n_tok = len(tokenizer)
    if n_tok > mconfig.vocab_size:
        raise ValueError(f"the tokenizer has {n_tok} tokens but the model's vocabulary has "
                         f"{mconfig.vocab_size} rows: tokenizer and model do not fit together")
    vocab_limit = n_tok if config.rank_vocab == "tokenizer" and n_tok < mconfig.vocab_size else None
    limit = vocab_limit or mconfig.vocab_size  # the ranked vocabulary
    if config.profile_ranks and config.profile_top_k > limit:
        raise ValueError(f"--profile-top-k {config.profile_top_k} exceeds the ranked vocabulary "
                         f"({limit})")
    load_s = time.perf_counter() - t0

    t1 = time.perf_counter()
    tokenized = tokenize_corpus(corpus, tokenizer, cache_dir=cache_dir)
    plan = plan_batches(tokenized, seq_len=config.context_length, batch_size=config.batch_size,
                        packing=config.packing, max_tokens=config.max_tokens)
    tokenize_s = time.perf_counter() - t1

    options = ScoreOptions(vocab_limit=vocab_limit, impl=config.impl, fused=config.fused,
                           logits_dtype="float32" if config.upcast_logits else None,
                           profile_ranks=tuple(config.profile_ranks), profile_top_k=config.profile_top_k)
    # What the step runs on these shapes (under auto, and why a kernel was skipped), from the
    # same dispatch that runs it; recorded instead of the backend's first choice.
    graphdef, params = nnx.split(model)
    first = shard_batch(plan.batch(0).model_inputs(), mesh)
    ran = kernel_plan(graphdef, params, first, options=options, mesh=mesh)
    settings = {**requested, "dataset": corpus.name, "batch_size": config.batch_size,
                "packing": config.packing, "tie_rule": TIE_RULE, "vocab_limit": limit,
                "impl": config.impl, "impl_resolved": ran.impl, "impl_skipped": dict(ran.skipped),
                "fused": config.fused and not config.profile_ranks,
                # TPUs (and TF32 GPUs) multiply float32 in lower precision unless told otherwise.
                "matmul_precision": str(jax.config.jax_default_matmul_precision or "default")}
    fresh_profile = ProfileStats(config.profile_ranks, config.profile_top_k) if config.profile_ranks else None
    # The partial folder is keyed by the full model path and corpus name, so two runs whose
    # result names coincide (same base names) never share a snapshot.
    key = hashlib.sha256(f"{model_path}\n{corpus.name}".encode()).hexdigest()[:10]
    state = EvalState.open(out_file.parent / ".partial" / f"{out_file.stem}-{key}", settings,
                           RankStats.zeros(limit, {"tie_rule": settings["tie_rule"],
                                                   "ranked_logits_dtype": settings["ranked_logits_dtype"],
                                                   "vocab_limit": limit}), fresh_profile)
    check_hosts_agree(state.next_batch, "hosts read different partial states: the output folder "
                      "must be on storage that every host sees")
    if state.next_batch:
        print(f"[rce-jax eval] resuming {model_name} on {corpus.name} at batch "
              f"{state.next_batch}/{plan.num_batches} ({state.stats.n_tokens} tokens done)")
    writer = jax.process_index() == 0

    def on_batch(next_batch):
        if writer and (next_batch % config.checkpoint_every == 0) and next_batch < plan.num_batches:
            state.save(next_batch)

    done_before = state.stats.n_tokens
    t2 = time.perf_counter()
    score_plan(plan, graphdef, params, options, mesh, stats=state.stats, profile=state.profile,
               start_batch=state.next_batch, on_batch=on_batch, progress=progress,
               desc=f"{model_name} | {corpus.name}")
    eval_s = time.perf_counter() - t2
    if state.stats.n_tokens != plan.num_scored_tokens:
        raise RuntimeError(f"scored {state.stats.n_tokens} tokens, the plan has {plan.num_scored_tokens}")

    dec = state.stats.decompose()
    text = plan.text_metrics(float(state.stats.sum_logp.sum()))
    counts = param_counts(model, mconfig)
    rs = state.stats.sparse()
    result = {
        "schema": RESULT_SCHEMA, "version": RESULT_VERSION,
        "model": model_name, "model_path": str(model_path), "family": family or mconfig.family, "architecture": mconfig.family,
        "n_params": counts["total"], "n_params_non_embedding": counts["non_embedding"],
        "dataset": corpus.name, "n_documents": int(plan.windows.num_docs), "n_tokens": dec.n_tokens,
        "ce": dec.ce, "ee": dec.ee, "sa": dec.sa, "conf": dec.conf, "log_C": dec.log_C,
        "ee_share": dec.ee_share, "top1": dec.top1, "n_tied_tokens": state.stats.n_tied,
        **{k: v for k, v in text.as_dict().items() if k not in ("num_tokens",)},
        "rank_stats": {"vocab_size": limit, **rs,
                       "p": (np.asarray(rs["count"]) / dec.n_tokens).tolist(),
                       "log_Q": (np.asarray(rs["sum_logp"]) / np.asarray(rs["count"])).tolist()},
        "profile": state.profile.to_dict() if state.profile is not None else None,
        "settings": {**settings, "model_vocab_size": mconfig.vocab_size, "tokenizer_size": n_tok,
                     "padded_vocab_rows_ranked": vocab_limit is None and n_tok < mconfig.vocab_size},
        "versions": _versions(),
        "timings": {"load_s": load_s, "tokenize_s": tokenize_s, "eval_s": eval_s,
                    "tokens_per_s": (dec.n_tokens - done_before) / eval_s if eval_s > 0 else None},
    }
    if writer:
        write_json(out_file, result)
        state.discard()
    return result
