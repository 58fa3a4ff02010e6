"""OPT: config translation and weight map.

Learned positions are indexed by position + 2. `do_layer_norm_before=False` (OPT-350m)
is the post-LN layout: LayerNorm after each residual add and no final LayerNorm;
when `word_embed_proj_dim` differs from hidden_size, `project_in` / `project_out`
map between the embedding width and the model width. Checkpoints name tensors
`model.decoder.*` (transformers) or `decoder.*` (some hub files).
"""

from __future__ import annotations

from typing import Any

from rce_jax.models.config import (ACTIVATIONS, ModelConfig, common_hf_fields, refuse_unless,
                                   token_ids_from_hf)
from rce_jax.models.families import FamilySpec, linear_entries, norm_entries
from rce_jax.models.mapping import COPY2, HEADS_IN, HEADS_IN_BIAS, HEADS_OUT, LINEAR, WeightEntry

F = "opt"


def config_from_hf(d: dict[str, Any]) -> ModelConfig:
    refuse_unless(d, "layer_norm_elementwise_affine", lambda v: bool(v), True, F,
                  "LayerNorms without scale and bias")
    act = refuse_unless(d, "activation_function", lambda v: v in ACTIVATIONS, "relu", F,
                        f"activations implemented: {ACTIVATIONS}")
    pre_ln = bool(d.get("do_layer_norm_before", True))
    bias = bool(d.get("enable_bias", True))
    D = d.get("hidden_size", 768)
    return ModelConfig(
        family=F,
        vocab_size=d.get("vocab_size", 50272),
        hidden_size=D,
        num_layers=d.get("num_hidden_layers", 12),
        num_heads=d.get("num_attention_heads", 12),
        intermediate_size=d.get("ffn_dim", 3072),
        max_position_embeddings=d.get("max_position_embeddings", 2048),
        tie_word_embeddings=d.get("tie_word_embeddings", True),
        norm_eps=1e-5,  # torch.nn.LayerNorm's default, which OPT uses
        activation=act,
        initializer_range=d.get("init_std", 0.02),
        qkv_bias=bias, o_bias=bias, mlp_bias=bias, rope=None,
        pre_layer_norm=pre_ln,
        final_norm=pre_ln and not d.get("_remove_final_layer_norm", False),
        word_embed_proj_dim=d.get("word_embed_proj_dim") or D,
        **token_ids_from_hf(d))


def _check(c: ModelConfig) -> None:
    if not c.pre_layer_norm and c.final_norm:
        raise ValueError("opt: a post-LN model (pre_layer_norm=False) has no final norm")
    if c.norm_eps != 1e-5:
        raise ValueError(f"opt: norm_eps must be 1e-5 (torch LayerNorm default), got {c.norm_eps}")


def config_to_hf(c: ModelConfig) -> dict[str, Any]:
    _check(c)
    if not (c.qkv_bias == c.o_bias == c.mlp_bias):
        raise ValueError("opt: qkv_bias, o_bias and mlp_bias must be equal (enable_bias)")
    return {
        **common_hf_fields(c, "OPTForCausalLM"),
        "hidden_size": c.hidden_size, "num_hidden_layers": c.num_layers,
        "num_attention_heads": c.num_heads, "ffn_dim": c.intermediate_size,
        "max_position_embeddings": c.max_position_embeddings,
        "do_layer_norm_before": c.pre_layer_norm,
        "_remove_final_layer_norm": c.pre_layer_norm and not c.final_norm,
        "word_embed_proj_dim": c.word_embed_proj_dim, "activation_function": c.activation,
        "enable_bias": c.qkv_bias, "layer_norm_elementwise_affine": True,
        "init_std": c.initializer_range, "dropout": 0.0, "attention_dropout": 0.0,
        "layerdrop": 0.0,
    }


def weight_map(c: ModelConfig) -> list[WeightEntry]:
    _check(c)
    dec = "model.decoder"
    m = [WeightEntry("embed.embedding", f"{dec}.embed_tokens.weight", COPY2),
         WeightEntry("pos_embed.embedding", f"{dec}.embed_positions.weight", COPY2)]
    if c.word_embed_proj_dim != c.hidden_size:
        m.append(WeightEntry("project_in.kernel", f"{dec}.project_in.weight", LINEAR))
        m.append(WeightEntry("project_out.kernel", f"{dec}.project_out.weight", LINEAR))
    for i in range(c.num_layers):
        p, h = f"layers.{i}", f"{dec}.layers.{i}"
        for ours, theirs in (("q", "q_proj"), ("k", "k_proj"), ("v", "v_proj")):
            m += linear_entries(f"{p}.attn.{ours}", f"{h}.self_attn.{theirs}", HEADS_IN,
                                bias=c.qkv_bias, bias_pattern=HEADS_IN_BIAS)
        m += linear_entries(f"{p}.attn.o", f"{h}.self_attn.out_proj", HEADS_OUT, bias=c.o_bias)
        m += norm_entries(f"{p}.attn_norm", f"{h}.self_attn_layer_norm")
        m += linear_entries(f"{p}.mlp.up", f"{h}.fc1", LINEAR, bias=c.mlp_bias)
        m += linear_entries(f"{p}.mlp.down", f"{h}.fc2", LINEAR, bias=c.mlp_bias)
        m += norm_entries(f"{p}.mlp_norm", f"{h}.final_layer_norm")
    if c.final_norm:
        m += norm_entries("final_norm", f"{dec}.final_layer_norm")
    if not c.tie_word_embeddings:
        m.append(WeightEntry("unembed", "lm_head.weight", COPY2))
    return m


SPEC = FamilySpec(
    family=F, architecture="OPTForCausalLM", config_from_hf=config_from_hf,
    config_to_hf=config_to_hf, weight_map=weight_map,
    aliases=((r"^decoder\.", "model.decoder."),),
)
