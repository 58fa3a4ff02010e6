"""GPT-NeoX (Pythia): config translation and weight map.

The fused query_key_value projection is interleaved per head: its output rows are
[head 0: q k v | head 1: q k v | ...], which our qkv kernel [D, H, 3, K] keeps. RoPE is
applied to the first `partial_rotary_factor` (old key: `rotary_pct`) of each head.
`use_parallel_residual` selects x + attn(ln1 x) + mlp(ln2 x). The head is untied
(`embed_out`, which transformers 5 calls `lm_head`).
"""

from __future__ import annotations

from typing import Any

from rce_jax.models.config import (ACTIVATIONS, ModelConfig, common_hf_fields, refuse_unless,
                                   rope_from_hf, rope_to_hf, token_ids_from_hf)
from rce_jax.models.families import FamilySpec, linear_entries, norm_entries
from rce_jax.models.mapping import COPY2, HEADS_OUT, LINEAR, WeightEntry

F = "gpt_neox"


def config_from_hf(d: dict[str, Any]) -> ModelConfig:
    act = refuse_unless(d, "hidden_act", lambda v: v in ACTIVATIONS, "gelu", F,
                        f"activations implemented: {ACTIVATIONS}")
    bias = bool(d.get("attention_bias", True))
    return ModelConfig(
        family=F,
        vocab_size=d.get("vocab_size", 50432),
        hidden_size=d.get("hidden_size", 6144),
        num_layers=d.get("num_hidden_layers", 44),
        num_heads=d.get("num_attention_heads", 64),
        intermediate_size=d.get("intermediate_size", 24576),
        max_position_embeddings=d.get("max_position_embeddings", 2048),
        tie_word_embeddings=d.get("tie_word_embeddings", False),
        norm_eps=d.get("layer_norm_eps", 1e-5),
        activation=act,
        initializer_range=d.get("initializer_range", 0.02),
        qkv_bias=bias, o_bias=bias, mlp_bias=True,
        rope=rope_from_hf(d, F, default_partial=0.25),
        parallel_residual=bool(d.get("use_parallel_residual", True)),
        **token_ids_from_hf(d))


def config_to_hf(c: ModelConfig) -> dict[str, Any]:
    return {
        **common_hf_fields(c, "GPTNeoXForCausalLM"),
        "hidden_size": c.hidden_size, "num_hidden_layers": c.num_layers,
        "num_attention_heads": c.num_heads, "intermediate_size": c.intermediate_size,
        "max_position_embeddings": c.max_position_embeddings, "hidden_act": c.activation,
        "layer_norm_eps": c.norm_eps, "initializer_range": c.initializer_range,
        "use_parallel_residual": c.parallel_residual, "attention_bias": c.qkv_bias,
        "rotary_pct": c.rope.partial_rotary_factor, "rotary_emb_base": c.rope.theta,
        **rope_to_hf(c.rope, partial_key="partial_rotary_factor"),
        "attention_dropout": 0.0, "hidden_dropout": 0.0,
    }


def weight_map(c: ModelConfig) -> list[WeightEntry]:
    if c.qkv_bias != c.o_bias or not c.mlp_bias:
        raise ValueError("gpt_neox: qkv_bias and o_bias must be equal (attention_bias), mlp_bias True")
    g = "gpt_neox"
    m = [WeightEntry("embed.embedding", f"{g}.embed_in.weight", COPY2)]
    for i in range(c.num_layers):
        p, h = f"layers.{i}", f"{g}.layers.{i}"
        m += norm_entries(f"{p}.attn_norm", f"{h}.input_layernorm")
        m += linear_entries(f"{p}.attn.qkv", f"{h}.attention.query_key_value",
                            "(h t k) d -> d h t k", bias=c.qkv_bias, bias_pattern="(h t k) -> h t k")
        m += linear_entries(f"{p}.attn.o", f"{h}.attention.dense", HEADS_OUT, bias=c.o_bias)
        m += norm_entries(f"{p}.mlp_norm", f"{h}.post_attention_layernorm")
        m += linear_entries(f"{p}.mlp.up", f"{h}.mlp.dense_h_to_4h", LINEAR, bias=True)
        m += linear_entries(f"{p}.mlp.down", f"{h}.mlp.dense_4h_to_h", LINEAR, bias=True)
    m += norm_entries("final_norm", f"{g}.final_layer_norm")
    if not c.tie_word_embeddings:
        m.append(WeightEntry("unembed", "embed_out.weight", COPY2))
    return m


SPEC = FamilySpec(
    family=F, architecture="GPTNeoXForCausalLM", config_from_hf=config_from_hf,
    config_to_hf=config_to_hf, weight_map=weight_map, head_name="embed_out.weight",
    aliases=((r"^lm_head\.weight$", "embed_out.weight"),),
    ignored=(r"\.attention\.(bias|masked_bias)$", r"rotary_emb\.inv_freq$"),
)
