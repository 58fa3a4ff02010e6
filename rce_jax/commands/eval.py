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


# config key -> its flag (each flag given on the command line overrides that key of --config)
FLAGS: dict[str, str] = {}


def register(sub, name):
    p = sub.add_parser(name, help="decompose the cross-entropy of models on corpora")

    def add(flag, key, **kwargs):  # a flag for an EvalJob key; absent from args unless given
        FLAGS[key] = flag
        p.add_argument(flag, dest=key, default=argparse.SUPPRESS, **kwargs)

    p.add_argument("--config", help="YAML or JSON file of the evaluation (rce_jax.evaluate.job.EvalJob: "
                   "models, data, out, ..., settings: EvalConfig; docs/config.md)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config key, e.g. --set settings.batch_size=16 (repeatable); "
                        "explicit flags override both")
    p.add_argument("--print-config", action="store_true",
                   help="print the resolved config as YAML and exit (reads no model or corpus)")
    add("--model", 'models', action="append", metavar="[NAME=]DIR",
        help="Hugging Face model directory (or cached repo id), optionally named "
             "(default name: the folder's name); repeat for several")
    add("--data", 'data', action="append", metavar="[NAME=]SPEC",
        help="python-docs[@split], python-code[@split], tfds:NAME[@split], "
             "hf:NAME[:CONFIG][@split] (datasets cache or save_to_disk folder), "
             "wikitext[:CONFIG|:FOLDER][@split] (lm-eval's wikitext task corpus), a "
             ".txt/.jsonl file or a folder of them, optionally named (default: the file "
             "name or the spec); repeat for several")
    add("--tokenizer", 'tokenizer', metavar="DIR",
        help="tokenizer folder to use instead of the model's own (e.g. a checkpoint "
             "saved without tokenizer files)")
    add("--family", 'family', help="family label of these models in the scaling fits "
        "(default: the architecture, e.g. gpt2 for DistilGPT2)")
    add("--split", 'split', help="split for corpora given without @split")
    add("--text-field", 'settings.text_field', help="JSONL/TFDS/HF field holding the text")
    add("--detokenizer", 'settings.detokenizer', choices=("wikitext",),
        help="rewrite each document before tokenization (words and bytes are counted "
             "on the text as read, as lm-eval's wikitext task does)")
    add("--add-special-tokens", 'settings.add_special_tokens', action="store_true",
        help="encode each document with the tokenizer's own special tokens (e.g. "
             "Llama's <s>) after the prefix token and score them, as "
             "lm-evaluation-harness >= 0.4.9.2 does; default: none, as lm-eval "
             "before 0.4.9.2 or with add_bos_token=False (docs/harness.md)")
    add("--context-length", 'settings.context_length', type=int, help="window length L (tokens)")
    add("--batch-size", 'settings.batch_size', type=int, help="global rows per step (default 8)")
    add("--max-tokens", 'settings.max_tokens', type=int, help="stop after the document that reaches N scored tokens")
    add("--dtype", 'settings.dtype', choices=("auto", "float32", "bfloat16", "float16"),
        help="model dtype (default auto: the checkpoint's own, as transformers loads it)")
    add("--out", 'out', help="results folder")
    add("--impl", 'settings.impl', help="token-stats implementation (auto, xla, pallas, ...)")
    add("--no-fused", 'settings.fused', action="store_false",
        help="materialise the [T, V] logits instead of fusing the LM head")
    add("--rank-vocab", 'settings.rank_vocab', choices=("model", "tokenizer"),
        help="model (default): every head row takes part in the softmax and the "
             "ranking, as the model outputs them; tokenizer: padded head rows beyond "
             "the tokenizer are left out of both, so CE changes too (the padded rows' "
             "probability mass is dropped), not only the ranks")
    add("--upcast-logits", 'settings.upcast_logits', action="store_true",
        help="rank float32 logits rather than the model's own dtype")
    add("--packing", 'settings.packing', choices=("first_fit", "none"))
    add("--profile-ranks", 'settings.profile_ranks', type=parse_ranks,
        help="collect the score profile for targets at these ranks, e.g. 2,4")
    add("--profile-top-k", 'settings.profile_top_k', type=int)
    add("--checkpoint-every", 'settings.checkpoint_every', type=int, help="batches between resumable snapshots")
    add("--model-parallel", 'settings.model_parallel', type=int, help="size of the mesh's 'model' axis")
    add("--bootstrap", 'settings.bootstrap', type=int, metavar="B",
        help="Poisson bootstrap replicates over documents for the intervals of CE, EE, SA, "
             "Conf and EE/CE (default 200; 0: no intervals)")
    add("--bootstrap-level", 'settings.bootstrap_level', type=float, help="interval level (default 0.95)")
    add("--bootstrap-seed", 'settings.bootstrap_seed', type=int,
        help="seed of the document weights; keep it equal across models to pair them")
    add("--cache-dir", 'cache_dir', help="token cache folder (default ~/.cache/rce_jax/tokens)")
    add("--force", 'force', action="store_true",
        help="recompute results that exist (results are keyed by model and corpus "
             "name and location and every setting that changes numbers, so this is "
             "needed only to compute the same thing again)")
    add("--save-stats", 'save_stats', action="store_true",
        help="also write each result's RankStats file beside it (<result>.stats.npz; "
             "rce-jax stats show|merge read it)")
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("--distributed", action="store_true",
        help="call jax.distributed.initialize() first (multi-host runs)")
    p.set_defaults(run=run)


def resolve_job(args):
    """The ``EvalJob`` of ``--config`` < ``--set`` < explicit flags; a bad value is reported by
    its flag if a flag gave it, else by its key."""
    from ..config import REQUIRED, ConfigError, apply_override, from_dict, read_file, set_key, to_dict
    from ..evaluate.job import EvalJob

    d = {} if args.config is None else read_file(args.config)
    d.setdefault("settings", {})  # so that a missing setting is named by its own key
    for item in args.set:
        apply_override(d, item)
    given = {key: value for key, value in vars(args).items() if key in FLAGS}
    for key, value in given.items():
        set_key(d, key, to_dict(value))
    try:
        return from_dict(EvalJob, d)
    except ConfigError as e:
        flag = FLAGS.get(e.key)
        if e.key in given:
            raise ValueError(f"{flag} {e.message}") from None
        if flag and e.message == REQUIRED:
            raise ValueError(f"give {flag} (or `{e.key}` in --config)") from None
        raise


def run(args) -> int:
    import jax

    if args.distributed:
        jax.distributed.initialize()
    from ..config import dump_yaml
    from ..evaluate import evaluate
    from ..io import check_output_dir

    job = resolve_job(args)
    if args.print_config:
        print(dump_yaml(job), end="")
        return 0
    config = job.settings
    # the batch shape and options as resolved, for the boundary's out-of-memory line
    # (rce_jax.cli.out_of_memory_message reads them by their flags' names)
    vars(args).update(batch_size=config.batch_size, context_length=config.context_length,
                      no_fused=not config.fused, model_parallel=config.model_parallel)
    models = [parse_named(m, "--model") for m in job.models]
    datas = [parse_named(d, "--data") for d in job.data]
    for flag, named in (("--model", models), ("--data", datas)):
        names = [n for n, _ in named if n is not None]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise ValueError(f"{flag}: the name(s) {', '.join(twice)} are given to more than one value")
    check_output_dir(job.out, "--out")  # before any model or corpus is read
    for model_name, model in models:
        for dataset_name, data in datas:
            r = evaluate(model, data, job.out, config, split=job.split, family=job.family,
                         model_name=model_name, dataset_name=dataset_name,
                         tokenizer_path=job.tokenizer, cache_dir=job.cache_dir,
                         force=job.force, save_stats=job.save_stats, progress=not args.no_progress)
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
