"""Model presets and ladders: Hugging Face config.json dicts without the tokenizer-dependent keys.

A preset fixes the architecture (family, width, depth, heads, MLP width, tying); the trainer
fills in ``vocab_size`` (the tokenizer's length, so no padded rows take part in the ranking),
``max_position_embeddings`` (the context length) and the BOS/EOS ids. Everything goes through
``ModelConfig.from_hf_dict``, the same path as a user's own config.json.

Ladders are lists of presets trained with one recipe: ``demo`` (``rce-jax demo``, CPU minutes),
``quick`` (``rce-jax demo --quick``, CI), ``gpu`` (``experiments/ladder_gpu.py``, one H100/H200).
"""

from __future__ import annotations

import json
from pathlib import Path

from ..models import ModelConfig


def llama(d: int, layers: int, heads: int, *, kv_heads: int | None = None, ffn: int | None = None,
          tie: bool = True, theta: float = 10000.0) -> dict:
    """A Llama-style decoder (RMSNorm, SwiGLU MLP of width ~8d/3 rounded up to a multiple of 8,
    RoPE, no biases), embeddings tied by default."""
    ffn = ffn if ffn is not None else -(-8 * d // 3 // 8) * 8
    return {"model_type": "llama", "hidden_size": d, "num_hidden_layers": layers,
            "num_attention_heads": heads, "num_key_value_heads": kv_heads or heads,
            "intermediate_size": ffn, "hidden_act": "silu", "rms_norm_eps": 1e-5,
            "rope_theta": theta, "tie_word_embeddings": tie, "attention_bias": False,
            "mlp_bias": False, "initializer_range": 0.02}


def gpt_neox(d: int, layers: int, heads: int, *, rotary_pct: float = 0.25, tie: bool = False) -> dict:
    """A Pythia-style GPT-NeoX decoder (parallel residual, LayerNorm, GELU MLP of width 4d)."""
    return {"model_type": "gpt_neox", "hidden_size": d, "num_hidden_layers": layers,
            "num_attention_heads": heads, "intermediate_size": 4 * d, "hidden_act": "gelu",
            "rotary_pct": rotary_pct, "rotary_emb_base": 10000, "layer_norm_eps": 1e-5,
            "use_parallel_residual": True, "tie_word_embeddings": tie, "initializer_range": 0.02}


LADDERS: dict[str, tuple[str, ...]] = {}
PRESETS: dict[str, dict] = {}


def _ladder(name: str, shapes) -> None:
    names = []
    for i, (d, layers, heads) in enumerate(shapes, start=1):
        PRESETS[f"{name}-{i}"] = llama(d, layers, heads)
        names.append(f"{name}-{i}")
    LADDERS[name] = tuple(names)


# (width, layers, heads); non-embedding parameters (measured) are in docs/measurements.md#the-demo-ladder.
_ladder("quick", [(8, 1, 1), (16, 1, 2), (24, 2, 2), (32, 2, 2), (48, 2, 4)])
_ladder("demo", [(16, 1, 2), (24, 1, 2), (32, 2, 2), (48, 2, 3), (64, 3, 4), (96, 3, 4)])
_ladder("gpu", [(128, 2, 2), (256, 4, 4), (384, 6, 6), (512, 8, 8), (768, 12, 12),
                (1024, 16, 16), (1536, 16, 16)])
PRESETS["125m"] = llama(768, 12, 12)
PRESETS["pythia-160m"] = gpt_neox(768, 12, 12)


def load_hf_dict(source) -> dict:
    """A config.json dict from a dict, a config.json path or a model folder."""
    if isinstance(source, dict):
        return dict(source)
    path = Path(source)
    if path.is_dir():
        path = path / "config.json"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such config.json")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}: not valid JSON ({e})") from e


def build_model_config(model_section, tokenizer, context_length: int) -> ModelConfig:
    """The ModelConfig of a run: preset or HF config, overrides, then the tokenizer's keys."""
    n_tok = len(tokenizer)
    if model_section.preset is not None:
        d = dict(PRESETS[model_section.preset])
        d.update(vocab_size=n_tok, max_position_embeddings=context_length)
    else:
        d = load_hf_dict(model_section.hf_config)
    d.update(model_section.overrides)
    d.setdefault("bos_token_id", tokenizer.bos_token_id)
    d.setdefault("eos_token_id", tokenizer.eos_token_id)
    config = ModelConfig.from_hf_dict(d)
    if config.vocab_size < n_tok:
        raise ValueError(f"the model's vocabulary has {config.vocab_size} rows but the tokenizer has "
                         f"{n_tok} tokens: they do not fit together")
    if config.max_position_embeddings < context_length:
        raise ValueError(f"context_length {context_length} exceeds the model's "
                         f"max_position_embeddings {config.max_position_embeddings}")
    return config
