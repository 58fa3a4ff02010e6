"""The benchmarks' random GPT-NeoX models: Pythia-1B's shape (``FULL``) or a tiny one (``TINY``)
for CPU smoke runs, as a ``ModelConfig`` or written as a Hugging Face folder with a tokenizer,
and the evaluation sizes (``EvalSizes``) that default by ``--tiny``.
Shared by ``rce_jax.bench.forward``, ``eval`` and ``bootstrap``."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from ..data import load_corpus
from ..models import ModelConfig, RopeConfig, init_model, save_pretrained

FULL = dict(vocab_size=50304, hidden_size=2048, num_layers=16, num_heads=8,
            intermediate_size=8192, max_position_embeddings=2048)
TINY = dict(vocab_size=1024, hidden_size=128, num_layers=2, num_heads=4,
            intermediate_size=512, max_position_embeddings=256)


@dataclasses.dataclass(frozen=True)
class EvalSizes:
    """A benchmark's --context-length, --batch-size and --max-tokens defaults, each
    ``(tiny, full)``: one place for both the help text and the value an unset flag takes."""

    context_length: tuple[int, int]
    batch_size: tuple[int, int]
    max_tokens: tuple[int, int]

    def add_options(self, parser) -> None:
        for flag, what in (("context-length", "tokens per row"), ("batch-size", "rows per step"),
                           ("max-tokens", "scored tokens")):
            tiny, full = getattr(self, flag.replace("-", "_"))
            parser.add_argument(f"--{flag}", type=int, default=None,
                                help=f"{what} (default {full:,}; tiny {tiny:,})")

    def resolve(self, args) -> tuple[int, int, int]:
        """(context length, batch size, max tokens): the flags given, else the defaults for --tiny."""
        return tuple(getattr(args, k) or getattr(self, k)[0 if args.tiny else 1]
                     for k in ("context_length", "batch_size", "max_tokens"))


def neox_config(sizes: dict) -> ModelConfig:
    return ModelConfig(family="gpt_neox", activation="gelu", parallel_residual=True,
                       rope=RopeConfig(theta=10000.0, partial_rotary_factor=0.25), **sizes)


def build_model_dir(out: Path, tiny: bool, dtype, tokenizer_dir, corpus_spec: str) -> Path:
    """A Hugging Face folder with random weights and a tokenizer that fits the vocabulary."""
    from ..train.tokenizer import load_tokenizer, train_bpe

    config = neox_config(TINY if tiny else FULL)
    if tokenizer_dir:
        tokenizer = load_tokenizer(tokenizer_dir)
    else:
        tokenizer = train_bpe([load_corpus(corpus_spec)], 512 if tiny else 8192)
    if len(tokenizer) > config.vocab_size:
        raise ValueError(f"the tokenizer has {len(tokenizer)} tokens, more than the model's "
                         f"{config.vocab_size} rows")
    config = dataclasses.replace(config, bos_token_id=tokenizer.bos_token_id,
                                 eos_token_id=tokenizer.eos_token_id)
    model = init_model(config, seed=0, dtype=dtype, param_dtype=dtype)
    return Path(save_pretrained(model, config, out / "model", tokenizer))
