"""GPT-2 (and DistilGPT2): config translation and weight map.

GPT-2 uses Conv1D layers whose weights are stored [in, out] (already our layout), a
fused c_attn whose output is [q | k | v] blocks, learned positions and a tied head.
Checkpoints come with (`transformer.h.0...`, as transformers saves GPT2LMHeadModel)
or without (`h.0...`, the original hub files) the `transformer.` prefix.
"""

from __future__ import annotations

from typing import Any

from rce_jax.models.config import (ACTIVATIONS, ModelConfig, common_hf_fields, first_present,
                                   refuse_unless, token_ids_from_hf)
from rce_jax.models.families import FamilySpec, linear_entries, norm_entries
from rce_jax.models.mapping import COPY2, WeightEntry

F = "gpt2"


def config_from_hf(d: dict[str, Any]) -> ModelConfig:
    refuse_unless(d, "add_cross_attention", lambda v: not v, False, F, "cross-attention")
    refuse_unless(d, "scale_attn_weights", lambda v: bool(v), True, F, "unscaled attention")
    act = refuse_unless(d, "activation_function", lambda v: v in ACTIVATIONS, "gelu_new", F,
                        f"activations implemented: {ACTIVATIONS}")
    D = first_present(d, "n_embd", "hidden_size", default=768)
    return ModelConfig(
        family=F,
        vocab_size=d.get("vocab_size", 50257),
        hidden_size=D,
        num_layers=first_present(d, "n_layer", "num_hidden_layers", default=12),
        num_heads=first_present(d, "n_head", "num_attention_heads", default=12),
        intermediate_size=d.get("n_inner") or 4 * D,
        max_position_embeddings=first_present(d, "n_positions", "max_position_embeddings", "n_ctx",
                                              default=1024),
        tie_word_embeddings=d.get("tie_word_embeddings", True),
        norm_eps=d.get("layer_norm_epsilon", 1e-5),
        activation=act,
        initializer_range=d.get("initializer_range", 0.02),
        qkv_bias=True, o_bias=True, mlp_bias=True, rope=None,
        scale_attn_by_inverse_layer_idx=bool(d.get("scale_attn_by_inverse_layer_idx", False)),
        **token_ids_from_hf(d))


def config_to_hf(c: ModelConfig) -> dict[str, Any]:
    return {
        **common_hf_fields(c, "GPT2LMHeadModel"),
        "n_embd": c.hidden_size, "n_layer": c.num_layers, "n_head": c.num_heads,
        "n_inner": c.intermediate_size, "n_positions": c.max_position_embeddings,
        "n_ctx": c.max_position_embeddings, "activation_function": c.activation,
        "layer_norm_epsilon": c.norm_eps, "initializer_range": c.initializer_range,
        "scale_attn_weights": True,
        "scale_attn_by_inverse_layer_idx": c.scale_attn_by_inverse_layer_idx,
        "resid_pdrop": 0.0, "embd_pdrop": 0.0, "attn_pdrop": 0.0,
    }


def weight_map(c: ModelConfig) -> list[WeightEntry]:
    t = "transformer"
    m = [WeightEntry("embed.embedding", f"{t}.wte.weight", COPY2),
         WeightEntry("pos_embed.embedding", f"{t}.wpe.weight", COPY2)]
    for i in range(c.num_layers):
        p, h = f"layers.{i}", f"{t}.h.{i}"
        m += norm_entries(f"{p}.attn_norm", f"{h}.ln_1")
        m += linear_entries(f"{p}.attn.qkv", f"{h}.attn.c_attn", "d (t h k) -> d t h k",
                            bias=True, bias_pattern="(t h k) -> t h k")
        m += linear_entries(f"{p}.attn.o", f"{h}.attn.c_proj", "(h k) d -> h k d", bias=True)
        m += norm_entries(f"{p}.mlp_norm", f"{h}.ln_2")
        m += linear_entries(f"{p}.mlp.up", f"{h}.mlp.c_fc", COPY2, bias=True)
        m += linear_entries(f"{p}.mlp.down", f"{h}.mlp.c_proj", COPY2, bias=True)
    m += norm_entries("final_norm", f"{t}.ln_f")
    if not c.tie_word_embeddings:
        m.append(WeightEntry("unembed", "lm_head.weight", COPY2))
    return m


SPEC = FamilySpec(
    family=F, architecture="GPT2LMHeadModel", config_from_hf=config_from_hf,
    config_to_hf=config_to_hf, weight_map=weight_map,
    aliases=((r"^(?!transformer\.|lm_head\.)", "transformer."),),
    ignored=(r"\.attn\.(bias|masked_bias)$",),
)
