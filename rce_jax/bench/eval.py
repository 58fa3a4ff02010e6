"""End-to-end evaluation throughput: ``rce-jax eval`` vs transformers (PyTorch) computing the
same decomposition, and the share of the scoring step spent on the token statistics.

A random GPT-NeoX model of Pythia-1B's shape (16 layers, d = 2048, V = 50304) is written as a
Hugging Face folder (bf16 safetensors + a byte-level BPE trained on the embedded code corpus,
or ``--tokenizer DIR``), then scored on the same corpus, windows and tokens by:

1. ``rce_jax.evaluate.evaluate`` (what ``rce-jax eval`` runs: load, tokenize, lm-eval rolling
   windows, first-fit packing, jitted model + fused token statistics, RankStats, result file),
   run twice; the second run's ``eval_s`` is the warm number (no compilation);
2. the same packed batches through the scoring step and through the model's forward alone
   (final hidden states), to split the step into model and statistics;
3. transformers' ``AutoModelForCausalLM`` (sdpa attention) on the unpacked windows (one window
   per row, right-padded, ``attention_mask`` and ``position_ids`` given), ranks and log-softmax in
   torch on the logits as the model returns them, per-rank ``bincount`` sums on the device.

Both sides rank the logits in the model's compute dtype (bf16), so their CE and EE agree to
bf16 rounding of two different forward implementations; the table shows the differences.
Device times are taken with ``block_until_ready`` / ``torch.cuda.synchronize``.

  python experiments/bench_eval.py --out out/bench_eval             # on a GPU
  python experiments/bench_eval.py --tiny --out out/bench_eval_cpu  # CPU smoke run
  python -m rce_jax.bench.eval --tiny --out out/bench_eval_cpu      # the same
"""

from __future__ import annotations

import argparse
import datetime
import tempfile
import time
from pathlib import Path

import jax
import jax.numpy as jnp
from flax import nnx

from ..cli import run_script
from ..data import load_corpus, plan_batches, tokenize_corpus
from ..evaluate import EvalConfig, ScoreOptions, evaluate
from ..evaluate.step import score_batch
from ..io import check_output_dir, write_report
from ..models import forward_hidden, from_pretrained
from ..stats import RankStats
from ..sharding import shard_batch
from .models import EvalSizes, build_model_dir

SIZES = EvalSizes(context_length=(128, 2048), batch_size=(4, 8), max_tokens=(8192, 1_000_000))


def time_loop(plan, step, sync, reset=None) -> float:
    """Seconds to run ``step`` on every batch of ``plan``, after one untimed call on the first
    batch (compilation, allocation) and ``reset()`` of whatever that call accumulated."""
    sync(step(next(iter(plan.iter_batches()))))
    if reset is not None:
        reset()
    t0 = time.perf_counter()
    out = None
    for batch in plan.iter_batches():
        out = step(batch)
    sync(out)
    return time.perf_counter() - t0


def bench_rce(model_dir, corpus_spec, work: Path, cfg: EvalConfig, cache_dir):
    first = evaluate(model_dir, corpus_spec, work / "run1", cfg, cache_dir=cache_dir, progress=False)
    warm = evaluate(model_dir, corpus_spec, work / "run2", cfg, cache_dir=cache_dir, progress=False)
    # The same packed batches through the scoring step and through the forward alone.
    model, _, tokenizer = from_pretrained(model_dir, dtype=jnp.dtype(cfg.dtype))
    graphdef, state = nnx.split(model)
    tokenized = tokenize_corpus(load_corpus(corpus_spec), tokenizer, cache_dir=cache_dir)
    plan = plan_batches(tokenized, seq_len=cfg.context_length, batch_size=cfg.batch_size,
                        max_tokens=cfg.max_tokens)
    options = ScoreOptions.of(cfg)  # what evaluate() compiles (rank_vocab "model": no vocab_limit)
    sync = jax.block_until_ready
    t_score = time_loop(plan, lambda b: score_batch(graphdef, state, shard_batch(b, None),
                                                    options=options, mesh=None), sync)
    t_fwd = time_loop(plan, lambda b: forward_hidden(graphdef, state, jnp.asarray(b.input_ids),
                                                     jnp.asarray(b.positions),
                                                     jnp.asarray(b.segment_ids)), sync)
    return first, warm, plan, t_score, t_fwd


def bench_torch(model_dir, corpus_spec, cfg: EvalConfig, cache_dir):
    import torch
    import transformers

    device = "cuda" if torch.cuda.is_available() else "cpu"
    dtype = {"bfloat16": torch.bfloat16, "float32": torch.float32}[cfg.dtype]
    model = transformers.AutoModelForCausalLM.from_pretrained(
        str(model_dir), dtype=dtype, attn_implementation="sdpa").to(device).eval()
    tokenizer = transformers.AutoTokenizer.from_pretrained(str(model_dir))
    tokenized = tokenize_corpus(load_corpus(corpus_spec), tokenizer, cache_dir=cache_dir)
    plan = plan_batches(tokenized, seq_len=cfg.context_length, batch_size=cfg.batch_size,
                        packing="none", max_tokens=cfg.max_tokens)
    V = model.config.vocab_size
    count = torch.zeros(V, dtype=torch.int64, device=device)
    total = torch.zeros(V, dtype=torch.float64, device=device)

    def step(batch):
        t = {k: torch.as_tensor(getattr(batch, k), device=device)
             for k in ("input_ids", "target_ids", "score_mask", "segment_ids", "positions")}
        with torch.inference_mode():
            logits = model(input_ids=t["input_ids"].long(), attention_mask=(t["segment_ids"] > 0).long(),
                           position_ids=t["positions"].long()).logits
            z = logits.float()  # exact: the ranks are those of the logits as returned
            m = t["score_mask"]
            z_y = z.gather(-1, t["target_ids"].long().unsqueeze(-1))
            rank = (z > z_y).sum(-1)[m]
            logp = (z_y.squeeze(-1) - torch.logsumexp(z, -1))[m]
            count.add_(torch.bincount(rank, minlength=V))
            total.add_(torch.bincount(rank, weights=logp.double(), minlength=V))
        return count

    sync = (lambda _: torch.cuda.synchronize()) if device == "cuda" else (lambda _: None)

    def reset():
        count.zero_()
        total.zero_()

    seconds = time_loop(plan, step, sync, reset)
    stats = RankStats(V, count.cpu().numpy(), total.cpu().numpy())
    name = torch.cuda.get_device_name() if device == "cuda" else "cpu"
    return stats, plan, seconds, name, torch.__version__, transformers.__version__


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--tiny", action="store_true", help="small model and corpus (CPU smoke run)")
    ap.add_argument("--corpus", default="python-code@all", help="corpus spec (default python-code@all)")
    ap.add_argument("--tokenizer", help="a Hugging Face tokenizer folder (default: train a BPE)")
    SIZES.add_options(ap)
    ap.add_argument("--dtype", default="bfloat16", choices=["bfloat16", "float32"])
    ap.add_argument("--impl", default="auto", help="token-stats implementation")
    ap.add_argument("--no-torch", action="store_true", help="time only rce_jax")
    a = ap.parse_args(argv)
    check_output_dir(a.out, "--out")  # before any work

    out = Path(a.out)
    L, B, max_tokens = SIZES.resolve(a)
    cfg = EvalConfig(context_length=L, batch_size=B, max_tokens=max_tokens, dtype=a.dtype, impl=a.impl)
    with tempfile.TemporaryDirectory(prefix="rce_bench_eval_") as tmp:
        work, cache = Path(tmp), Path(tmp) / "cache"
        model_dir = build_model_dir(work, a.tiny, jnp.dtype(a.dtype), a.tokenizer, a.corpus)
        first, warm, plan, t_score, t_fwd = bench_rce(model_dir, a.corpus, work, cfg, cache)
        n = warm["n_tokens"]
        rows = [("rce-jax eval, end to end (first run, compiles)", first["timings"]["eval_s"], n),
                ("rce-jax eval, end to end (second run)", warm["timings"]["eval_s"], n),
                ("rce_jax scoring step only (model + statistics)", t_score, n),
                ("rce_jax model forward only (hidden states)", t_fwd, n)]
        result = {"date": datetime.date.today().isoformat(), "jax": jax.__version__,
                  "device": jax.devices()[0].device_kind, "config": vars(a) | {
                      "context_length": cfg.context_length, "batch_size": cfg.batch_size,
                      "max_tokens": cfg.max_tokens},
                  "n_tokens": n, "rce_rows": plan.num_batches * cfg.batch_size,
                  "impl_resolved": warm["settings"]["impl_resolved"],
                  "rce": {k: warm[k] for k in ("ce", "ee", "sa", "conf")},
                  "statistics_share_of_step": max(0.0, 1 - t_fwd / t_score)}
        if not a.no_torch:
            stats, tplan, t_torch, tdev, tv, trv = bench_torch(model_dir, a.corpus, cfg, cache)
            dec = stats.decompose()
            if dec.n_tokens != n:
                raise RuntimeError(f"torch scored {dec.n_tokens} tokens, rce_jax {n}")
            rows.append(("transformers (sdpa) + torch statistics, unpacked", t_torch, n))
            result.update(torch_device=tdev, torch=tv, transformers=trv,
                          torch_rows=tplan.num_batches * cfg.batch_size,
                          torch_decomposition={"ce": dec.ce, "ee": dec.ee, "sa": dec.sa, "conf": dec.conf},
                          abs_diff={k: abs(getattr(dec, k) - warm[k]) for k in ("ce", "ee", "sa", "conf")})
    result["rows"] = [{"what": w, "seconds": s, "tokens_per_s": n_ / s} for w, s, n_ in rows]
    size = "tiny" if a.tiny else "Pythia-1B-sized"
    md = [f"# Evaluation throughput ({size} random GPT-NeoX, {a.dtype}, context {cfg.context_length}, "
          f"batch {cfg.batch_size})", "",
          f"{n:,} scored tokens of `{a.corpus}`; device {result['device']}; JAX {jax.__version__}; "
          f"token statistics `{result['impl_resolved']}`; {result['date']}.", "",
          "| what | seconds | tokens/s |", "|---|---:|---:|"]
    md += [f"| {r['what']} | {r['seconds']:.3f} | {r['tokens_per_s']:,.0f} |" for r in result["rows"]]
    md += ["", f"Statistics share of the scoring step: {result['statistics_share_of_step']:.1%} "
           f"(1 - forward / step). Rows: rce_jax {result['rce_rows']} (packed)"
           + (f", transformers {result['torch_rows']} (one window per row)." if not a.no_torch else ".")]
    if not a.no_torch:
        md += ["", "| | CE | EE | SA | Conf |", "|---|---:|---:|---:|---:|",
               "| rce_jax | " + " | ".join(f"{result['rce'][k]:.5f}" for k in ("ce", "ee", "sa", "conf")) + " |",
               "| transformers | " + " | ".join(f"{result['torch_decomposition'][k]:.5f}"
                                              for k in ("ce", "ee", "sa", "conf")) + " |",
               "| abs. difference | " + " | ".join(f"{result['abs_diff'][k]:.2e}"
                                                  for k in ("ce", "ee", "sa", "conf")) + " |"]
    print(write_report(out, "bench_eval", result, md))
    return result


if __name__ == "__main__":
    run_script("python -m rce_jax.bench.eval", main)
