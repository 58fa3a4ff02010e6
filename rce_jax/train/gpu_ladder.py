"""The identical-recipe ladder at GPU scale: seven Llama-style models, 4e5 to 4.5e8 non-embedding
parameters (3.06 decades), one recipe, on one H100/H200.

    python experiments/ladder_gpu.py --train PATH_OR_SPEC [--train ...] --out out/ladder_gpu
    python experiments/ladder_gpu.py --tiny --out out/ladder_gpu_tiny     # CPU check, 45.7 s measured
    python -m rce_jax.train.gpu_ladder --tiny --out out/ladder_gpu_tiny  # the same as the script

Same machinery as ``rce-jax demo`` (``rce_jax.train.ladder.run_ladder``): every rung trained on
the same tokens in the same order, exported, evaluated through ``rce-jax eval``'s pipeline on
the held-out corpora, fitted per dataset; ``report.md`` says what was found.

The GPU recipe (not run here: this task had no GPU): context 1024, 32 rows per step, 8000
steps = 262M tokens per model; AdamW peak lr 3e-3 x 256 / width, warmup 400 steps, cosine to
0.1x; bf16 compute, float32 parameters; cuDNN attention. The embedded corpora hold about 1.3M
training tokens, far too few for this recipe: pass a large corpus with ``--train`` (a local
JSONL / text folder, or ``tfds:c4/en@train`` once prepared) and a tokenizer with
``--tokenizer`` (or let it train a 32k BPE on ``--train``). Rough cost, assuming ~40% of an
H100's bf16 peak: the largest rung needs 6 x 5e8 x 2.6e8 ~ 8e17 FLOPs, about 35 minutes; the
whole ladder about an hour and a half.
"""

from __future__ import annotations

import argparse
import functools
import shlex
import sys

from ..cli import run_script
from ..io import check_output_dir
from .config import DataSection, EvalSection, ModelSection, OptimSection, TokenizerSection, TrainConfig
from .ladder import LadderSpec, run_ladder
from .presets import LADDERS

EVAL = ["python-docs@heldout", "python-code@heldout"]


def gpu_ladder(train_specs, eval_specs, tokenizer: str | None, *, steps: int, batch_size: int,
               context_length: int, lr: float, vocab: int, presets=LADDERS["gpu"],
               attention: str = "cudnn", dtype: str = "bfloat16", eval_max_tokens: int | None = None,
               name: str = "ladder-gpu") -> LadderSpec:
    recipe = TrainConfig(
        model=ModelSection(preset=presets[0], attention_impl=attention),
        tokenizer=TokenizerSection(path=tokenizer, vocab_size=vocab),
        data=DataSection(train=list(train_specs), eval=list(eval_specs)),
        optim=OptimSection(lr=lr, lr_ref_width=256, warmup_steps=max(1, steps // 20), min_lr_ratio=0.1,
                           weight_decay=0.1, clip_norm=1.0),
        eval=EvalSection(),
        steps=steps, batch_size=batch_size, context_length=context_length, dtype=dtype,
        param_dtype="float32", log_every=min(50, steps), save_every=min(1000, steps), keep=1)
    return LadderSpec(name=name, presets=tuple(presets), recipe=recipe, eval_batch_size=32,
                      eval_max_tokens=eval_max_tokens, dynamics=max(1, steps // 10),
                      dynamics_max_tokens=65536)


def tiny_ladder() -> LadderSpec:
    """The GPU recipe builder with CPU-sized settings: three tiny rungs, float32, our attention."""
    return gpu_ladder(["python-docs@train"], EVAL, None, steps=20, batch_size=8, context_length=64,
                      lr=1e-2, vocab=512, presets=LADDERS["quick"][:3], attention="einsum",
                      dtype="float32", eval_max_tokens=4096, name="ladder-gpu-tiny")


def parse(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", default="out/ladder_gpu")
    p.add_argument("--tiny", action="store_true", help="verify the script on CPU with three tiny models")
    p.add_argument("--train", action="append", help="training corpus spec (repeatable)")
    p.add_argument("--eval", action="append", help="held-out corpus spec (repeatable; default: embedded prose and code)")
    p.add_argument("--tokenizer", help="a Hugging Face tokenizer folder (default: train a BPE on --train)")
    p.add_argument("--vocab", type=int, default=32768, help="size of the BPE trained when --tokenizer is absent")
    p.add_argument("--steps", type=int, default=8000)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--context-length", type=int, default=1024)
    p.add_argument("--lr", type=float, default=3e-3, help="peak lr at width 256 (scaled by 256 / width)")
    p.add_argument("--no-progress", action="store_true")
    args = p.parse_args(argv)
    check_output_dir(args.out, "--out")  # before any work
    return args


def main(argv=None, prog: str = "python experiments/ladder_gpu.py"):
    """``prog``: how the command is written in the report (the script, or ``python -m``)."""
    args = parse(argv)
    if args.tiny:
        spec = tiny_ladder()
    else:
        if not args.train:
            raise SystemExit("give the training corpus with --train (the embedded corpora are too small)")
        spec = gpu_ladder(args.train, args.eval or EVAL, args.tokenizer, steps=args.steps,
                          batch_size=args.batch_size, context_length=args.context_length, lr=args.lr,
                          vocab=args.vocab)
    command = f"{prog} " + " ".join(shlex.quote(a) for a in (argv or sys.argv[1:]))
    report = run_ladder(spec, args.out, progress=not args.no_progress, command=command,
                        title=f"{spec.name}: {len(spec.presets)} models, one recipe")
    for f in report["findings"]:
        for s in f["sentences"]:
            print(f"- {s}")
    return report


if __name__ == "__main__":
    run_script("python -m rce_jax.train.gpu_ladder",
               functools.partial(main, prog="python -m rce_jax.train.gpu_ladder"))
