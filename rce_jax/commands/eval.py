"""``rce-jax eval``: the decomposition of models on corpora, one result JSON per pair."""

from __future__ import annotations


import argparse
import os


def parse_named(text: str, flag: str) -> tuple[str | None, str]:
    """``NAME=VALUE`` -> (NAME, VALUE); a bare VALUE (or an existing path holding '=') -> (None, VALUE)."""
    name, eq, value = text.partition("=")
    if not eq or os.path.exists(text):
        return None, text
    if not name or not value or "/" in name:
        raise ValueError(f"{flag} {text!r}: expected NAME={'PATH' if flag == '--model' else 'SPEC'} "
                         "with a non-empty NAME (no '/') and value")
    return name, value


def parse_ranks(text: str) -> tuple[int, ...]:
    try:
        ranks = tuple(int(x) for x in text.split(",") if x.strip())
    except ValueError as e:  # ArgumentTypeError: argparse shows this message as it is
        raise argparse.ArgumentTypeError(
            f"--profile-ranks takes comma-separated integers, got {text!r}") from e
    return ranks


def register(sub, name):
    p = sub.add_parser(name, help="decompose the cross-entropy of models on corpora")
    p.add_argument("--model", action="append", required=True, metavar="[NAME=]DIR",
                   help="Hugging Face model directory (or cached repo id), optionally named "
                        "(default name: the folder's name); repeat for several")
    p.add_argument("--data", action="append", required=True, metavar="[NAME=]SPEC",
                   help="python-docs[@split], python-code[@split], tfds:NAME[@split], "
                        "hf:NAME[:CONFIG][@split] (datasets cache or save_to_disk folder), "
                        "wikitext[:CONFIG|:FOLDER][@split] (lm-eval's wikitext task corpus), a "
                        ".txt/.jsonl file or a folder of them, optionally named (default: the file "
                        "name or the spec); repeat for several")
    p.add_argument("--tokenizer", metavar="DIR",
                   help="tokenizer folder to use instead of the model's own (e.g. a checkpoint "
                        "saved without tokenizer files)")
    p.add_argument("--family", help="family label of these models in the scaling fits "
                   "(default: the architecture, e.g. gpt2 for DistilGPT2)")
    p.add_argument("--split", help="split for corpora given without @split")
    p.add_argument("--text-field", default="text", help="JSONL/TFDS/HF field holding the text")
    p.add_argument("--detokenizer", choices=("wikitext",),
                   help="rewrite each document before tokenization (words and bytes are counted "
                        "on the text as read, as lm-eval's wikitext task does)")
    p.add_argument("--add-special-tokens", action="store_true",
                   help="encode each document with the tokenizer's own special tokens (e.g. "
                        "Llama's <s>) after the prefix token and score them, as "
                        "lm-evaluation-harness >= 0.4.9.2 does; default: none, as lm-eval "
                        "before 0.4.9.2 or with add_bos_token=False (docs/harness.md)")
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
                   help="model (default): every head row takes part in the softmax and the "
                        "ranking, as the model outputs them; tokenizer: padded head rows beyond "
                        "the tokenizer are left out of both, so CE changes too (the padded rows' "
                        "probability mass is dropped), not only the ranks")
    p.add_argument("--upcast-logits", action="store_true",
                   help="rank float32 logits rather than the model's own dtype")
    p.add_argument("--packing", choices=("first_fit", "none"), default="first_fit")
    p.add_argument("--profile-ranks", type=parse_ranks, default=(),
                   help="collect the score profile for targets at these ranks, e.g. 2,4")
    p.add_argument("--profile-top-k", type=int, default=16)
    p.add_argument("--checkpoint-every", type=int, default=20, help="batches between resumable snapshots")
    p.add_argument("--model-parallel", type=int, default=1, help="size of the mesh's 'model' axis")
    p.add_argument("--bootstrap", type=int, default=200, metavar="B",
                   help="Poisson bootstrap replicates over documents for the intervals of CE, EE, SA, "
                        "Conf and EE/CE (default 200; 0: no intervals)")
    p.add_argument("--bootstrap-level", type=float, default=0.95, help="interval level (default 0.95)")
    p.add_argument("--bootstrap-seed", type=int, default=0,
                   help="seed of the document weights; keep it equal across models to pair them")
    p.add_argument("--cache-dir", help="token cache folder (default ~/.cache/rce_jax/tokens)")
    p.add_argument("--force", action="store_true",
                   help="recompute results that exist (results are keyed by model and corpus "
                        "name and location and every setting that changes numbers, so this is "
                        "needed only to compute the same thing again)")
    p.add_argument("--save-stats", action="store_true",
                   help="also write each result's RankStats file beside it (<result>.stats.npz; "
                        "rce-jax stats show|merge read it)")
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("--distributed", action="store_true",
                   help="call jax.distributed.initialize() first (multi-host runs)")
    p.set_defaults(run=run)


def run(args) -> int:
    import jax

    if args.distributed:
        jax.distributed.initialize()
    from ..evaluate import EvalConfig, evaluate
    from ..io import check_output_dir

    config = EvalConfig(
        context_length=args.context_length, batch_size=args.batch_size, max_tokens=args.max_tokens,
        dtype=args.dtype, impl=args.impl, fused=not args.no_fused, rank_vocab=args.rank_vocab,
        upcast_logits=args.upcast_logits, packing=args.packing, profile_ranks=args.profile_ranks,
        profile_top_k=args.profile_top_k, checkpoint_every=args.checkpoint_every,
        text_field=args.text_field, model_parallel=args.model_parallel,
        add_special_tokens=args.add_special_tokens, detokenizer=args.detokenizer,
        bootstrap=args.bootstrap, bootstrap_level=args.bootstrap_level, bootstrap_seed=args.bootstrap_seed)
    models = [parse_named(m, "--model") for m in args.model]
    datas = [parse_named(d, "--data") for d in args.data]
    for flag, named in (("--model", models), ("--data", datas)):
        names = [n for n, _ in named if n is not None]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise ValueError(f"{flag}: the name(s) {', '.join(twice)} are given to more than one value")
    check_output_dir(args.out, "--out")  # before any model or corpus is read
    for model_name, model in models:
        for dataset_name, data in datas:
            r = evaluate(model, data, args.out, config, split=args.split, family=args.family,
                         model_name=model_name, dataset_name=dataset_name,
                         tokenizer_path=args.tokenizer, cache_dir=args.cache_dir,
                         force=args.force, save_stats=args.save_stats, progress=not args.no_progress)
            print(f"{r['model']} on {r['dataset']}: {r['n_tokens']} tokens, CE {r['ce']:.4f} = "
                  f"EE {r['ee']:.4f} + SA {r['sa']:.4f} - Conf {r['conf']:.4f} "
                  f"(EE/CE {r['ee_share']:.3f}); word ppl {r['word_perplexity']:.3f}, "
                  f"bits/byte {r['bits_per_byte']:.4f}")
            iv = r.get("intervals")
            if iv:
                print(f"  {iv['level']:.0%} intervals ({iv['replicates']} document-bootstrap replicates): "
                      + ", ".join(f"{k.upper() if k != 'ee_share' else 'EE/CE'} [{iv[k]['lo']:.4f}, "
                                  f"{iv[k]['hi']:.4f}]" for k in ("ce", "ee", "sa", "conf", "ee_share")))
    return 0
