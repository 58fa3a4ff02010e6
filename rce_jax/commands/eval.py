"""``rce-jax eval``: the decomposition of models on corpora, one result JSON per pair."""

from __future__ import annotations


import argparse


def parse_ranks(text: str) -> tuple[int, ...]:
    try:
        ranks = tuple(int(x) for x in text.split(",") if x.strip())
    except ValueError as e:  # ArgumentTypeError: argparse shows this message as it is
        raise argparse.ArgumentTypeError(
            f"--profile-ranks takes comma-separated integers, got {text!r}") from e
    return ranks


def register(sub, name):
    p = sub.add_parser(name, help="decompose the cross-entropy of models on corpora")
    p.add_argument("--model", action="append", required=True, metavar="DIR",
                   help="Hugging Face model directory (or cached repo id); repeat for several")
    p.add_argument("--data", action="append", required=True, metavar="SPEC",
                   help="python-docs[@split], python-code[@split], tfds:NAME[@split], a .txt/.jsonl "
                        "file or a folder of them; repeat for several")
    p.add_argument("--family", help="family label of these models in the scaling fits "
                   "(default: the architecture, e.g. gpt2 for DistilGPT2)")
    p.add_argument("--split", help="split for corpora given without @split")
    p.add_argument("--text-field", default="text", help="JSONL/TFDS field holding the text")
    p.add_argument("--context-length", type=int, required=True, help="window length L (tokens)")
    p.add_argument("--batch-size", type=int, default=8, help="global rows per step (default 8)")
    p.add_argument("--max-tokens", type=int, help="stop after the document that reaches N scored tokens")
    p.add_argument("--dtype", choices=("auto", "float32", "bfloat16", "float16"), default="auto",
                   help="model dtype (default auto: the checkpoint's own, as transformers loads it)")
    p.add_argument("--out", required=True, help="results folder")
    p.add_argument("--impl", default="auto", help="token-stats implementation (auto, xla, pallas, ...)")
    p.add_argument("--no-fused", action="store_true",
                   help="materialise the [T, V] logits instead of fusing the LM head")
    p.add_argument("--rank-vocab", choices=("model", "tokenizer"), default="model",
                   help="rank over every head row (default) or only the tokenizer's entries")
    p.add_argument("--upcast-logits", action="store_true",
                   help="rank float32 logits rather than the model's own dtype")
    p.add_argument("--packing", choices=("first_fit", "none"), default="first_fit")
    p.add_argument("--profile-ranks", type=parse_ranks, default=(),
                   help="collect the score profile for targets at these ranks, e.g. 2,4")
    p.add_argument("--profile-top-k", type=int, default=16)
    p.add_argument("--checkpoint-every", type=int, default=20, help="batches between resumable snapshots")
    p.add_argument("--model-parallel", type=int, default=1, help="size of the mesh's 'model' axis")
    p.add_argument("--cache-dir", help="token cache folder (default ~/.cache/rce_jax/tokens)")
    p.add_argument("--force", action="store_true", help="recompute results that exist")
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("--distributed", action="store_true",
                   help="call jax.distributed.initialize() first (multi-host runs)")
    p.set_defaults(run=run)


def run(args) -> int:
    import jax

    if args.distributed:
        jax.distributed.initialize()
    from ..evaluate import EvalConfig, evaluate

    config = EvalConfig(
        context_length=args.context_length, batch_size=args.batch_size, max_tokens=args.max_tokens,
        dtype=args.dtype, impl=args.impl, fused=not args.no_fused, rank_vocab=args.rank_vocab,
        upcast_logits=args.upcast_logits, packing=args.packing, profile_ranks=args.profile_ranks,
        profile_top_k=args.profile_top_k, checkpoint_every=args.checkpoint_every,
        text_field=args.text_field, model_parallel=args.model_parallel)
    for model in args.model:
        for data in args.data:
            r = evaluate(model, data, args.out, config, split=args.split, family=args.family,
                         cache_dir=args.cache_dir,
                         force=args.force, progress=not args.no_progress)
            print(f"{r['model']} on {r['dataset']}: {r['n_tokens']} tokens, CE {r['ce']:.4f} = "
                  f"EE {r['ee']:.4f} + SA {r['sa']:.4f} - Conf {r['conf']:.4f} "
                  f"(EE/CE {r['ee_share']:.3f}); word ppl {r['word_perplexity']:.3f}, "
                  f"bits/byte {r['bits_per_byte']:.4f}")
    return 0
