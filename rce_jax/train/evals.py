"""Periodic held-out evaluation during training, through the eval pipeline's own loop.

Each eval corpus is tokenized with the run's tokenizer and planned exactly as ``rce-jax eval``
plans it (lm-evaluation-harness rolling windows of the training context length, first-fit
packing; ``eval.max_tokens`` cuts at whole documents); the batches are scored by
``rce_jax.evaluate.score_plan`` into a ``RankStats``, so the numbers are those ``rce-jax eval``
gives for the same parameters and settings; each is recorded as the same result record
(``rce_jax.results.EvalResult``, producer ``train``, with the training step).
"""

from __future__ import annotations

from pathlib import Path

from ..data import load_corpus, plan_batches, tokenize_corpus
from ..evaluate import ScoreOptions, plan_kernels, score_plan
from ..plots import display_name, file_stem, plot_p_evolution, plot_training_dynamics
from ..results import build_result
from ..stats import TIE_RULE, RankStats


def build_eval_sets(config, tokenizer) -> list[tuple[str, object, object]]:
    """``[(corpus name, BatchPlan, Corpus)]`` for ``config.data.eval``."""
    sets = []
    for spec in config.data.eval:
        corpus = load_corpus(spec, text_field=config.data.text_field)
        tokenized = tokenize_corpus(corpus, tokenizer, cache_dir=config.data.cache_dir)
        plan = plan_batches(tokenized, seq_len=config.context_length, batch_size=config.eval.batch_size,
                            max_tokens=config.eval.max_tokens)
        sets.append((corpus.name, plan, corpus))
    return sets


def run_evals(eval_sets, graphdef, params, mesh, eval_section, vocab_size: int, *, context_length: int,
              identity: dict, step: int, dtype: str, kernel_plans: dict | None = None) -> dict:
    """``{corpus: result record as JSON}`` of ``params`` at training step ``step``
    (``vocab_size``: rows of the LM head, all ranked; ``context_length``: the windows';
    ``identity``: ``model``, ``model_path``,
    ``family``, ``counts`` of the model being trained; ``dtype``: its computation dtype;
    ``kernel_plans``: a dict kept across the calls of one run, so what the step runs is planned
    once per eval set rather than traced again at every evaluation: shapes and options do not
    change during a run)."""
    options = ScoreOptions.of(eval_section.eval_config(context_length))
    out = {}
    cache = {} if kernel_plans is None else kernel_plans
    for name, plan, corpus in eval_sets:
        stats = RankStats.zeros(vocab_size, {"tie_rule": TIE_RULE})
        if name not in cache:
            cache[name] = plan_kernels(plan, graphdef, params, options, mesh)
        ran = cache[name]
        score_plan(plan, graphdef, params, options, mesh, stats=stats, progress=False)
        settings = {"context_length": plan.windows.seq_len, "tokenization": plan.tokenized.tokenization,
                    "rank_vocab": "model", "dtype": dtype, "ranked_logits_dtype": dtype,
                    "max_tokens": eval_section.max_tokens, "batch_size": eval_section.batch_size,
                    "packing": "first_fit", "tie_rule": TIE_RULE, "vocab_limit": vocab_size,
                    "impl": eval_section.impl, "impl_resolved": ran.impl, "impl_skipped": dict(ran.skipped),
                    "fused": eval_section.fused}
        out[name] = build_result(
            stats, plan.text_metrics(float(stats.sum_logp.sum())), model=identity["model"],
            model_path=identity["model_path"], family=identity["family"], architecture=identity["family"],
            counts=identity["counts"], dataset=name, dataset_spec=name,
            corpus_fingerprint=corpus.fingerprint, tokenizer_fingerprint=plan.tokenized.tokenizer_fingerprint,
            n_documents=plan.windows.num_docs, settings=settings, producer="train", step=step).to_dict()
    return out


def eval_rows(rows, name: str) -> list[dict]:
    """The metrics rows of one eval set, flattened for ``rce_jax.plots`` (step, ce, ee, ...)."""
    return [{"step": r["step"], **r["eval"][name]} for r in rows if name in r.get("eval", {})]


def write_training_figures(rows, folder) -> list[Path]:
    """Training dynamics (the paper's Figure 3) and the evolution of p_e (Figure 4) per eval set."""
    names = sorted({n for r in rows for n in r.get("eval", {})})
    paths = []
    for name in names:
        series = eval_rows(rows, name)
        if not series:
            continue
        paths.append(plot_training_dynamics(series, Path(folder) / file_stem("training_dynamics", name),
                                            title=f"training dynamics on {display_name(name)}"))
        paths.append(plot_p_evolution(series, Path(folder) / file_stem("p_evolution", name),
                                      title=f"evolution of $p_e$ on {display_name(name)}"))
    return paths
