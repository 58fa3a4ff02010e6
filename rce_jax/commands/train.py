"""``rce-jax train``: train a model with the proxy loss (optax AdamW, orbax checkpoints)."""

from __future__ import annotations

# flag -> config key (each flag is a shortcut for --set KEY=VALUE)
FLAGS = {"preset": "model.preset", "hf_config": "model.hf_config", "steps": "steps",
         "batch_size": "batch_size", "context_length": "context_length", "lr": "optim.lr",
         "lam": "loss.lam", "seed": "seed", "dtype": "dtype", "tokenizer": "tokenizer.path",
         "eval_every": "eval.every"}


def register(sub, name):
    p = sub.add_parser(name, help="train a model with the proxy loss CE + lam Conf; resumable")
    p.add_argument("--config", help="YAML or JSON config file (see rce_jax.train.config)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config value, e.g. --set optim.lr=3e-4 (repeatable)")
    p.add_argument("--out", help="run folder (rerun the same command to resume); required unless "
                   "--print-config")
    p.add_argument("--preset", help="model preset (rce_jax.train.presets), e.g. demo-3, 125m")
    p.add_argument("--hf-config", help="a Hugging Face config.json (or model folder) to train from scratch")
    p.add_argument("--tokenizer", help="a Hugging Face tokenizer folder (default: train a BPE)")
    p.add_argument("--steps", type=int)
    p.add_argument("--batch-size", type=int, help="global rows per step")
    p.add_argument("--context-length", type=int)
    p.add_argument("--lr", type=float, help="peak learning rate")
    p.add_argument("--lam", type=float, help="proxy-loss weight of Conf (0: cross-entropy)")
    p.add_argument("--seed", type=int)
    p.add_argument("--dtype", choices=("float32", "bfloat16"), help="computation dtype")
    p.add_argument("--eval-every", type=int, help="held-out decomposition every N steps (0: off)")
    p.add_argument("--restart", action="store_true", help="discard an earlier run in --out")
    p.add_argument("--print-config", action="store_true", help="print the resolved config and exit")
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("--distributed", action="store_true",
                   help="call jax.distributed.initialize() first (multi-host runs)")
    p.set_defaults(run=run)


def resolve_config(args):
    from ..train.config import load_config

    overrides = list(args.set)
    for flag, key in FLAGS.items():
        value = getattr(args, flag)
        if value is not None:
            overrides.append(f"{key}={value}")
    if args.preset is not None and args.hf_config is None:
        overrides.append("model.hf_config=null")
    if args.hf_config is not None and args.preset is None:
        overrides.append("model.preset=null")
    return load_config(args.config, overrides)


def run(args) -> int:
    import jax

    if args.distributed:
        jax.distributed.initialize()
    from ..train.config import dump_yaml
    from ..train.loop import train

    config = resolve_config(args)
    if args.print_config:
        print(dump_yaml(config), end="")
        return 0
    if not args.out:
        raise ValueError("rce-jax train needs --out DIR (the run folder)")
    result = train(config, args.out, progress=not args.no_progress, restart=args.restart)
    s = result.summary
    last = s["final_train"] or {}
    print(f"trained {s['model']} ({s['n_params_non_embedding']:,} non-embedding parameters) for "
          f"{s['steps']} steps, {s['tokens_trained']:,} tokens; final train loss {last.get('loss', float('nan')):.4f}")
    for name, e in (s["final_eval"] or {}).items():
        print(f"  {name}: CE {e['ce']:.4f} = EE {e['ee']:.4f} + SA {e['sa']:.4f} - Conf {e['conf']:.4f}")
    print(f"model: {result.model_dir}")
    return 0
