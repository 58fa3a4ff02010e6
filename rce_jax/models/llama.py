"""Llama, Mistral and Qwen2: one implementation, config switches (model_type decides).

All three: RMSNorm, gated SiLU MLP, RoPE over the whole head (default / linear / llama3
scaling), grouped-query attention, optional `head_dim`, tied or untied head.
  llama    attention_bias (q, k, v, o) and mlp_bias as configured
  mistral  no biases; `sliding_window` on every layer when set
  qwen2    q/k/v biases, no o/MLP bias; sliding window only with use_sliding_window=True,
           on layers i >= max_window_layers (or as `layer_types` says)
"""

from __future__ import annotations

from typing import Any

from rce_jax.models.config import (ACTIVATIONS, ModelConfig, common_hf_fields, refuse_unless,
                                   rope_from_hf, rope_to_hf, token_ids_from_hf)
from rce_jax.models.families import FamilySpec, linear_entries, norm_entries
from rce_jax.models.mapping import COPY2, HEADS_IN, HEADS_IN_BIAS, HEADS_OUT, LINEAR, WeightEntry

_ARCH = {"llama": "LlamaForCausalLM", "mistral": "MistralForCausalLM", "qwen2": "Qwen2ForCausalLM"}


def _sliding(d: dict[str, Any], family: str, num_layers: int):
    if family == "llama":
        return None, None
    if family == "mistral":
        return d.get("sliding_window"), None
    window = d.get("sliding_window") if d.get("use_sliding_window", False) else None
    if window is None:
        return None, None
    types = d.get("layer_types") or [
        "sliding_attention" if i >= d.get("max_window_layers", 28) else "full_attention"
        for i in range(num_layers)]
    return window, tuple(types)


def config_from_hf(d: dict[str, Any]) -> ModelConfig:
    family = d["model_type"]
    act = refuse_unless(d, "hidden_act", lambda v: v in ACTIVATIONS, "silu", family,
                        f"activations implemented: {ACTIVATIONS}")
    H = d.get("num_attention_heads", 32)
    D = d.get("hidden_size", 4096)
    L = d.get("num_hidden_layers", 32)
    if family == "llama":
        qkv_bias = o_bias = bool(d.get("attention_bias", False))
        mlp_bias = bool(d.get("mlp_bias", False))
    elif family == "mistral":
        qkv_bias = o_bias = mlp_bias = False
    else:
        qkv_bias, o_bias, mlp_bias = True, False, False
    window, layer_types = _sliding(d, family, L)
    return ModelConfig(
        family=family,
        vocab_size=d.get("vocab_size", 32000),
        hidden_size=D,
        num_layers=L,
        num_heads=H,
        num_kv_heads=d.get("num_key_value_heads") or H,
        head_dim=d.get("head_dim") or D // H,
        intermediate_size=d.get("intermediate_size", 11008),
        max_position_embeddings=d.get("max_position_embeddings", 2048),
        tie_word_embeddings=d.get("tie_word_embeddings", False),
        norm_eps=d.get("rms_norm_eps", 1e-6),
        activation=act,
        initializer_range=d.get("initializer_range", 0.02),
        qkv_bias=qkv_bias, o_bias=o_bias, mlp_bias=mlp_bias,
        rope=rope_from_hf(d, family, allow_partial=False),
        sliding_window=window, layer_types=layer_types,
        **token_ids_from_hf(d))


def config_to_hf(c: ModelConfig) -> dict[str, Any]:
    if c.rope.partial_rotary_factor != 1.0:
        raise ValueError(f"{c.family}: partial_rotary_factor must be 1.0")
    out = {
        **common_hf_fields(c, _ARCH[c.family]),
        "hidden_size": c.hidden_size, "intermediate_size": c.intermediate_size,
        "num_hidden_layers": c.num_layers, "num_attention_heads": c.num_heads,
        "num_key_value_heads": c.num_kv_heads, "head_dim": c.head_dim,
        "hidden_act": c.activation, "max_position_embeddings": c.max_position_embeddings,
        "rms_norm_eps": c.norm_eps, "initializer_range": c.initializer_range,
        "attention_dropout": 0.0, **rope_to_hf(c.rope),
    }
    sliding = [t == "sliding_attention" for t in c.layer_types]
    if c.family == "llama":
        if c.qkv_bias != c.o_bias or any(sliding):
            raise ValueError("llama: needs qkv_bias == o_bias (attention_bias) and no sliding window")
        out.update(attention_bias=c.qkv_bias, mlp_bias=c.mlp_bias)
    elif c.family == "mistral":
        if c.qkv_bias or c.o_bias or c.mlp_bias or (any(sliding) and not all(sliding)):
            raise ValueError("mistral: no biases; the sliding window is on all layers or none")
        out["sliding_window"] = c.sliding_window if all(sliding) else None
    else:
        if not c.qkv_bias or c.o_bias or c.mlp_bias:
            raise ValueError("qwen2: needs qkv_bias=True, o_bias=False, mlp_bias=False")
        first = sliding.index(True) if any(sliding) else c.num_layers
        if any(sliding[first:]) and not all(sliding[first:]):
            raise ValueError("qwen2: sliding layers must be the last ones (max_window_layers)")
        out.update(use_sliding_window=any(sliding),
                   sliding_window=c.sliding_window if any(sliding) else None,
                   max_window_layers=first, layer_types=list(c.layer_types))
    return out


def weight_map(c: ModelConfig) -> list[WeightEntry]:
    m = [WeightEntry("embed.embedding", "model.embed_tokens.weight", COPY2)]
    for i in range(c.num_layers):
        p, h = f"layers.{i}", f"model.layers.{i}"
        m += norm_entries(f"{p}.attn_norm", f"{h}.input_layernorm", bias=False)
        for ours in ("q", "k", "v"):
            m += linear_entries(f"{p}.attn.{ours}", f"{h}.self_attn.{ours}_proj", HEADS_IN,
                                bias=c.qkv_bias, bias_pattern=HEADS_IN_BIAS)
        m += linear_entries(f"{p}.attn.o", f"{h}.self_attn.o_proj", HEADS_OUT, bias=c.o_bias)
        m += norm_entries(f"{p}.mlp_norm", f"{h}.post_attention_layernorm", bias=False)
        for ours in ("gate", "up", "down"):
            m += linear_entries(f"{p}.mlp.{ours}", f"{h}.mlp.{ours}_proj", LINEAR, bias=c.mlp_bias)
    m += norm_entries("final_norm", "model.norm", bias=False)
    if not c.tie_word_embeddings:
        m.append(WeightEntry("unembed", "lm_head.weight", COPY2))
    return m


SPECS = tuple(
    FamilySpec(family=f, architecture=arch, config_from_hf=config_from_hf,
               config_to_hf=config_to_hf, weight_map=weight_map,
               ignored=(r"rotary_emb\.inv_freq$",))
    for f, arch in _ARCH.items())
