"""``evaluate``: one model on one corpus -> the decomposition, word/byte metrics, a result file.

corpus -> the model's tokenizer (cached) -> lm-eval rolling windows -> packed batches -> the
compiled scoring step -> per-batch rank sums -> host RankStats (resumable) -> result JSON
(``rce_jax.results.EvalResult``; with ``save_stats`` also the RankStats file beside it).
``score_plan`` is the loop itself, shared with the trainer's periodic evaluation.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import platform
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from tqdm.auto import tqdm

from .. import __version__
from ..config import require
from ..bootstrap import DEFAULT_LEVEL, DEFAULT_REPLICATES, DEFAULT_SEED, BootstrapStats, document_keys
from ..data import load_corpus, plan_batches, tokenize_corpus
from ..data.corpora import canonical_spec
from ..data.packing import PACKING_MODES
from ..results import EvalResult, build_result, read_result, result_file_name, source_key, write_result
from ..stats import TIE_RULE, RankStats
from .profile import ProfileStats
from .resume import EvalState
from ..preempt import preemption_guard
from ..sharding import DATA, check_hosts_agree, shard_batch
from .step import ScoreOptions, kernel_plan, score_batch

EVAL_DTYPES = ("auto", "float32", "bfloat16", "float16")  # auto: models.stored_dtype


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
    # "model": every head row; "tokenizer": only the tokenizer's entries, in the softmax as well
    # as in the ranking (so CE changes too: the padded rows' probability mass is left out)
    rank_vocab: str = "model"
    upcast_logits: bool = False  # rank float32 logits instead of the model's own dtype
    packing: str = "first_fit"
    profile_ranks: tuple[int, ...] = ()
    profile_top_k: int = 16
    checkpoint_every: int = 20  # batches between resumable snapshots
    text_field: str = "text"
    model_parallel: int = 1  # size of the mesh's 'model' axis
    # True: documents encoded with the tokenizer's own special tokens (lm-evaluation-harness
    # >= 0.4.9.2); False: none (before 0.4.9.2, or add_bos_token=False). docs/harness.md.
    add_special_tokens: bool = False
    detokenizer: str | None = None  # rce_jax.data.detokenize.DETOKENIZERS, before tokenization
    bootstrap: int = DEFAULT_REPLICATES  # Poisson bootstrap replicates over documents (0: none)
    bootstrap_level: float = DEFAULT_LEVEL
    bootstrap_seed: int = DEFAULT_SEED

    def __post_init__(self):
        """Errors name the field (``ConfigError.key``); ``rce-jax eval`` words them as its flags."""
        from rce_kernels.dispatch import IMPLS

        require(self.context_length >= 1, "context_length", f"must be positive, got {self.context_length}")
        for key in ("batch_size", "checkpoint_every", "model_parallel", "profile_top_k"):
            require(getattr(self, key) >= 1, key, f"must be positive, got {getattr(self, key)}")
        require(self.max_tokens is None or self.max_tokens >= 1, "max_tokens",
                f"must be positive or null (all), got {self.max_tokens}")
        require(self.impl in IMPLS, "impl", f"must be one of {', '.join(IMPLS)}, got {self.impl!r}")
        require(self.rank_vocab in ("model", "tokenizer"), "rank_vocab",
                f"must be 'model' or 'tokenizer', got {self.rank_vocab!r}")
        require(self.dtype in EVAL_DTYPES, "dtype", f"must be one of {', '.join(EVAL_DTYPES)}, got {self.dtype!r}")
        require(self.packing in PACKING_MODES, "packing", f"must be one of {', '.join(PACKING_MODES)}, got {self.packing!r}")
        require(all(r >= 1 for r in self.profile_ranks), "profile_ranks",
                f"ranks are positive integers, got {self.profile_ranks}")
        require(self.bootstrap == 0 or self.bootstrap >= 2, "bootstrap",
                f"takes 0 (none) or at least 2 replicates, got {self.bootstrap}")
        require(0.0 < self.bootstrap_level < 1.0, "bootstrap_level", f"must lie in (0, 1), got {self.bootstrap_level}")

    @property
    def tokenization(self) -> str:
        return "special_tokens" if self.add_special_tokens else "plain"

    def number_settings(self) -> dict:
        """The settings that change the numbers (``rce_jax.results.NUMBER_SETTINGS``)."""
        return {"context_length": self.context_length, "tokenization": self.tokenization,
                "rank_vocab": self.rank_vocab, "dtype": self.dtype,
                "ranked_logits_dtype": "float32" if self.upcast_logits else self.dtype,
                "max_tokens": self.max_tokens}

    def for_checkpoint(self, model_path) -> EvalConfig:
        """This config with ``dtype="auto"`` resolved to the checkpoint's stored dtype, as
        transformers and lm-evaluation-harness load it (``models.stored_dtype``)."""
        if self.dtype != "auto":
            return self
        from ..models import stored_dtype

        return dataclasses.replace(self, dtype=stored_dtype(model_path))

    @property
    def bootstrap_settings(self) -> dict | None:
        """``{replicates, level, seed}`` of the bootstrap, or None without one."""
        if not self.bootstrap:
            return None
        return {"replicates": self.bootstrap, "level": self.bootstrap_level, "seed": self.bootstrap_seed}


def score_plan(plan, graphdef, state, options: ScoreOptions, mesh, *, stats: RankStats,
               profile: ProfileStats | None = None, start_batch: int = 0, on_batch=None,
               progress: bool = True, desc: str = "eval", bootstrap: BootstrapStats | None = None,
               doc_keys=None) -> None:
    """Score batches ``start_batch..`` of ``plan`` into ``stats`` (and ``profile``, and
    ``bootstrap``, whose documents' keys are ``doc_keys[doc index]``), in place.

    One step stays in flight while the host builds the next batch and folds the previous sums.
    ``on_batch(next_batch)`` is called after each batch's sums are folded in.
    """
    if bootstrap is not None and not options.token_outputs:
        raise ValueError("the bootstrap needs ScoreOptions(token_outputs=True)")
    process = jax.process_index()
    bar = tqdm(total=plan.num_scored_tokens, initial=stats.n_tokens, unit="tok", unit_scale=True,
               desc=desc, disable=not progress or process != 0, dynamic_ncols=True)
    pending = None
    gather = None  # on several hosts each holds its own rows of the per-token outputs
    if bootstrap is not None and jax.process_count() > 1:
        from jax.experimental import multihost_utils

        gather = functools.partial(multihost_utils.process_allgather, tiled=True)

    def fold(item):
        batch, out = item
        index = batch.index
        sums, prof, tokens = out
        stats.add_batch(sums, where=f"batch {index}")
        if profile is not None:
            profile.add(*prof)
        if bootstrap is not None:
            if gather is not None:
                tokens = gather(tokens)
            rank, logp = (np.asarray(t) for t in jax.device_get(tokens))
            scored = batch.score_mask.reshape(-1)
            bootstrap.add_tokens(rank[scored], logp[scored], doc_keys[batch.doc_ids.reshape(-1)[scored]])
        # add_batch refused any invalid token, so the batch's scored tokens are all counted
        bar.update(batch.num_scored)
        if on_batch is not None:
            on_batch(index + 1)

    for batch in plan.iter_batches(start_batch):
        arrays = shard_batch(batch, mesh)
        out = score_batch(graphdef, state, arrays, options=options, mesh=mesh)
        if pending is not None:
            fold(pending)
        pending = (batch, out)
    if pending is not None:
        fold(pending)
    bar.close()


def plan_kernels(plan, graphdef, state, options: ScoreOptions, mesh):
    """The ``rce_kernels.KernelPlan`` that ``score_plan`` runs on ``plan``'s batches (all of one
    shape): what runs under ``auto`` and why a kernel was skipped, from the same dispatch that
    runs it (``step.kernel_plan`` traces the step abstractly on the first batch). Results record
    this, never the backend's first choice."""
    first = shard_batch(plan.batch(0), mesh)
    return kernel_plan(graphdef, state, first, options=options, mesh=mesh)


def _versions() -> dict:
    import flax
    import transformers

    return {"rce_jax": __version__, "jax": jax.__version__, "flax": flax.__version__,
            "transformers": transformers.__version__, "python": platform.python_version(),
            "backend": jax.default_backend(), "device_kind": jax.devices()[0].device_kind,
            "device_count": jax.device_count(), "process_count": jax.process_count()}


def dataset_label(dataset: str) -> str:
    """The default name of a corpus: a local one by its file or folder name, others as named."""
    if dataset.startswith(("tfds:", "hf:", "wikitext")) or "/" not in dataset:
        return dataset
    return Path(dataset.rstrip("/")).name


def data_source(data_spec: str, config: EvalConfig, split=None) -> str:
    """Where the corpus comes from, independent of how its path is written (plus its detokenizer)."""
    source = canonical_spec(data_spec, split)
    return f"{source}+{config.detokenizer}" if config.detokenizer else source


def result_path(out_dir, model_name: str, dataset_name: str, config: EvalConfig, *, model_path,
                data_spec: str, split=None) -> Path:
    """Where the result of model ``model_name`` (at ``model_path``) on corpus ``dataset_name``
    (``data_spec``) under ``config`` is written: keyed by both names, every number-changing
    setting and the two locations, so no two different evaluations share a file. With
    ``--dtype auto`` the name holds the dtype that runs (``EvalConfig.for_checkpoint``)."""
    config = config.for_checkpoint(model_path)
    key = source_key(os.path.realpath(model_path) if os.path.exists(model_path) else str(model_path),
                     data_source(data_spec, config, split))
    return Path(out_dir) / result_file_name(model_name, dataset_name, config.number_settings(), key)


def default_model_name(model_path) -> str:
    """A model's name when none is given: its folder's name."""
    return Path(str(model_path).rstrip("/")).name


def stats_path(result_file) -> Path:
    """Where ``eval --save-stats`` writes the RankStats of a result: beside it, ``.npz``."""
    return Path(result_file).with_suffix(".stats.npz")


def evaluate(model_path, data_spec: str, out_dir, config: EvalConfig, *, split=None,
             model_name: str | None = None, dataset_name: str | None = None, tokenizer_path=None,
             family: str | None = None, cache_dir=None, force: bool = False,
             save_stats: bool = False, progress: bool = True) -> EvalResult:
    """Evaluate one model directory on one corpus; write and return the result.

    ``model_name`` / ``dataset_name`` name the model and the corpus in the result and its file
    name (default: the model folder's name, the corpus file's name or spec). ``tokenizer_path``
    is a tokenizer folder to use instead of the model's own. ``family`` labels the model's
    family for the scaling fits (default: its architecture, which the result keeps as
    ``architecture``; e.g. DistilGPT2 is a ``gpt2`` architecture but its own family in the
    paper). An existing result of the same model, corpus and settings is returned as is unless
    ``force`` (one made from other inputs under the same file name is a ValueError); a partial
    run of the same settings is resumed. The result file appears only when the run is complete;
    with ``save_stats`` its RankStats file (``stats_path``) is written beside it.
    """
    from ..models import from_pretrained, param_counts
    from ..models.loading import TOKENIZER_FILES, load_tokenizer, resolve_model_dir
    from ..sharding import make_mesh

    def has_tokenizer(folder) -> bool:
        return any(os.path.exists(os.path.join(folder, f)) for f in TOKENIZER_FILES)

    config = config.for_checkpoint(model_path)  # --dtype auto: the checkpoint's own dtype

    model_name = model_name or default_model_name(model_path)
    if tokenizer_path is not None and not has_tokenizer(tokenizer_path):
        raise ValueError(f"--tokenizer {tokenizer_path}: no tokenizer files there "
                         f"({', '.join(TOKENIZER_FILES)})")
    if tokenizer_path is None and not has_tokenizer(resolve_model_dir(model_path)):
        raise ValueError(f"{model_path}: the model directory has no tokenizer files; "
                         "give one with --tokenizer DIR")
    t0 = time.perf_counter()
    corpus = load_corpus(data_spec, split=split, text_field=config.text_field,
                         detokenizer=config.detokenizer)
    dataset_name = dataset_name or dataset_label(corpus.name)
    out_file = result_path(out_dir, model_name, dataset_name, config, model_path=model_path,
                           data_spec=data_spec, split=split)
    # What decides the numbers; an existing result is reused only if it was made from the same.
    requested = {"model_path": str(model_path), "corpus_fingerprint": corpus.fingerprint,
                 **config.number_settings(), "profile_ranks": list(config.profile_ranks),
                 "profile_top_k": config.profile_top_k, "bootstrap": config.bootstrap_settings}
    if out_file.exists() and not force:
        existing = read_result(out_file)
        old = {"model_path": existing.model_path, "corpus_fingerprint": existing.corpus_fingerprint,
               **{k: existing.settings.get(k) for k in requested if k not in ("model_path", "corpus_fingerprint")}}
        changed = [k for k in requested if old.get(k) != requested[k]]
        if changed:
            detail = ", ".join(f"{k}: {old.get(k)!r} there, {requested[k]!r} now" for k in changed)
            raise ValueError(f"{out_file} holds the result of another model, corpus or settings "
                             f"({detail}); use --force to overwrite it or choose another --out")
        if save_stats and not stats_path(out_file).exists() and jax.process_index() == 0:
            existing.rank_stats_object().save(stats_path(out_file))
        print(f"[rce-jax eval] {out_file} exists; skipping (use --force to recompute)")
        return existing
    mesh = make_mesh(model=config.model_parallel) if jax.device_count() > 1 else None
    data_devices = mesh.shape[DATA] if mesh is not None else 1
    if config.batch_size % data_devices:  # before loading anything
        raise ValueError(f"batch size {config.batch_size} does not split over the "
                         f"{data_devices} data-parallel devices")
    model, mconfig, tokenizer = from_pretrained(model_path, dtype=jnp.dtype(config.dtype), mesh=mesh,
                                                tokenizer=tokenizer_path is None)
    if tokenizer_path is not None:
        tokenizer = load_tokenizer(str(tokenizer_path))
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
    tokenized = tokenize_corpus(corpus, tokenizer, cache_dir=cache_dir,
                                add_special_tokens=config.add_special_tokens)
    plan = plan_batches(tokenized, seq_len=config.context_length, batch_size=config.batch_size,
                        packing=config.packing, max_tokens=config.max_tokens)
    tokenize_s = time.perf_counter() - t1

    options = ScoreOptions.of(config, vocab_limit=vocab_limit)
    graphdef, params = nnx.split(model)
    ran = plan_kernels(plan, graphdef, params, options, mesh)
    settings = {**{k: v for k, v in requested.items() if k not in ("model_path", "corpus_fingerprint")},
                "batch_size": config.batch_size, "packing": config.packing, "tie_rule": TIE_RULE,
                "vocab_limit": limit, "detokenizer": config.detokenizer,
                "tokenizer_path": None if tokenizer_path is None else str(tokenizer_path),
                "impl": config.impl, "impl_resolved": ran.impl, "impl_skipped": dict(ran.skipped),
                "tokenizer_fingerprint": tokenized.tokenizer_fingerprint,
                "fused": config.fused and not config.profile_ranks,
                # TPUs (and TF32 GPUs) multiply float32 in lower precision unless told otherwise.
                "matmul_precision": str(jax.config.jax_default_matmul_precision or "default")}
    fresh_profile = ProfileStats(config.profile_ranks, config.profile_top_k) if config.profile_ranks else None
    # The result's file name already holds a key of the model location and corpus source, so two
    # runs whose names coincide never share a snapshot.
    state = EvalState.open(out_file.parent / ".partial" / out_file.stem,
                           {**settings, "corpus_fingerprint": corpus.fingerprint},
                           RankStats.zeros(limit, {"tie_rule": settings["tie_rule"],
                                                   "ranked_logits_dtype": settings["ranked_logits_dtype"],
                                                   "vocab_limit": limit}), fresh_profile,
                           BootstrapStats(limit, config.bootstrap, level=config.bootstrap_level,
                                          seed=config.bootstrap_seed) if config.bootstrap else None)
    check_hosts_agree(state.next_batch, "hosts read different partial states: the output folder "
                      "must be on storage that every host sees")
    if state.next_batch:
        print(f"[rce-jax eval] resuming {model_name} on {dataset_name} at batch "
              f"{state.next_batch}/{plan.num_batches} ({state.stats.n_tokens} tokens done)")
    writer = jax.process_index() == 0

    def on_batch(next_batch):
        if writer and (next_batch % config.checkpoint_every == 0) and next_batch < plan.num_batches:
            state.save(next_batch)
        state.stop_if_preempted(next_batch, plan.num_batches, writer)

    done_before = state.stats.n_tokens
    t2 = time.perf_counter()
    with preemption_guard():
        score_plan(plan, graphdef, params, options, mesh, stats=state.stats, profile=state.profile,
                   start_batch=state.next_batch, on_batch=on_batch, progress=progress,
                   desc=f"{model_name} | {dataset_name}", bootstrap=state.bootstrap,
                   doc_keys=document_keys(corpus.documents[:plan.windows.num_docs]) if config.bootstrap else None)
    eval_s = time.perf_counter() - t2
    if state.stats.n_tokens != plan.num_scored_tokens:
        raise RuntimeError(f"scored {state.stats.n_tokens} tokens, the plan has {plan.num_scored_tokens}")

    n_scored = state.stats.n_tokens
    result = build_result(
        state.stats, plan.text_metrics(float(state.stats.sum_logp.sum())),
        model=model_name, model_path=str(model_path), family=family or mconfig.family,
        architecture=mconfig.family, counts=param_counts(model, mconfig), dataset=dataset_name,
        dataset_spec=corpus.name, corpus_fingerprint=corpus.fingerprint,
        tokenizer_fingerprint=tokenized.tokenizer_fingerprint, n_documents=int(plan.windows.num_docs),
        settings={**settings, "model_vocab_size": mconfig.vocab_size, "tokenizer_size": n_tok,
                  "padded_vocab_rows_ranked": vocab_limit is None and n_tok < mconfig.vocab_size},
        profile=state.profile, bootstrap=state.bootstrap, versions=_versions(),
        timings={"load_s": load_s, "tokenize_s": tokenize_s, "eval_s": eval_s,
                 "tokens_per_s": (n_scored - done_before) / eval_s if eval_s > 0 else None})
    if writer:
        def write_outputs():
            if save_stats:  # before the result: a result file present means its statistics are too
                state.stats.save(stats_path(out_file))
            write_result(out_file, result)

        state.finish(out_file, write_outputs, plan.num_batches)
    return result
