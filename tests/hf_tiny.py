"""Tiny random transformers models for the model-port tests (helpers, not tests).

Each variant is a small Hugging Face config exercising one feature of a family. The weights
are drawn by the project, not by transformers' initialisation (which changes between releases):
every parameter from a NumPy generator seeded by (seed, CRC-32 of its name), standard deviation
0.1; norm scales 1 + 0.1 z and biases 0.1 z are non-trivial, so that a mis-mapped bias or norm
cannot go unnoticed. The same seed gives the same model under any transformers or torch release.

torch is imported only inside the helpers that need it (``need_torch``): without torch the
tests that build transformers models skip, with the reason, instead of failing to collect.
"""

from __future__ import annotations

import json
import os
import zlib

import numpy as np
import pytest
import transformers as tf

SEQ = 272  # > 256, longer than every sliding window and original_max_position_embeddings below


def _llama3(factor=8.0):
    return {"rope_type": "llama3", "factor": factor, "low_freq_factor": 1.0,
            "high_freq_factor": 4.0, "original_max_position_embeddings": 64}


def variant_configs() -> dict[str, tf.PretrainedConfig]:
    small = dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=4)
    return {
        # GPT-2: odd vocabulary (does not divide a 4-way model axis) and 3 heads.
        "gpt2": tf.GPT2Config(vocab_size=1001, n_embd=96, n_layer=2, n_head=3, n_positions=320,
                              bos_token_id=0, eos_token_id=0),
        "gpt2_layer_scaled": tf.GPT2Config(vocab_size=1024, n_embd=64, n_layer=2, n_head=4,
                                           n_positions=320, scale_attn_by_inverse_layer_idx=True,
                                           activation_function="gelu", tie_word_embeddings=False,
                                           bos_token_id=0, eos_token_id=0),
        "neox_parallel": tf.GPTNeoXConfig(vocab_size=1024, intermediate_size=128, rotary_pct=0.5,
                                          use_parallel_residual=True, **small),
        "neox_sequential": tf.GPTNeoXConfig(vocab_size=1024, intermediate_size=128,
                                            rotary_pct=0.25, use_parallel_residual=False, **small),
        "opt_pre_ln": tf.OPTConfig(vocab_size=1024, ffn_dim=128, max_position_embeddings=320,
                                   **small),
        "opt_post_ln_proj": tf.OPTConfig(vocab_size=1024, ffn_dim=128, max_position_embeddings=320,
                                         do_layer_norm_before=False, word_embed_proj_dim=32,
                                         **small),
        "llama3_gqa_untied": tf.LlamaConfig(vocab_size=1024, intermediate_size=128,
                                            num_key_value_heads=2, rope_scaling=_llama3(),
                                            tie_word_embeddings=False, **small),
        "llama_linear_tied": tf.LlamaConfig(vocab_size=1024, intermediate_size=128,
                                            rope_scaling={"rope_type": "linear", "factor": 4.0},
                                            tie_word_embeddings=True, attention_bias=True,
                                            mlp_bias=True, **small),
        "llama_plain": tf.LlamaConfig(vocab_size=1024, intermediate_size=128, rope_theta=500.0,
                                      head_dim=24, tie_word_embeddings=False, **small),
        "mistral_window": tf.MistralConfig(vocab_size=1024, intermediate_size=128,
                                           num_key_value_heads=2, sliding_window=48, **small),
        "qwen2_tied": tf.Qwen2Config(vocab_size=1024, intermediate_size=128, num_key_value_heads=2,
                                     tie_word_embeddings=True, **small),
        "qwen2_window": tf.Qwen2Config(vocab_size=1024, intermediate_size=128,
                                       num_key_value_heads=2, num_hidden_layers=3,
                                       hidden_size=64, num_attention_heads=4,
                                       use_sliding_window=True, sliding_window=40,
                                       max_window_layers=1, tie_word_embeddings=False),
    }


def need_torch():
    """torch, or a skip of the calling test (torch is the tests' independent reference)."""
    return pytest.importorskip(
        "torch", reason="needs torch, the tests' independent reference (pip install 'rce-jax[test]')")


def project_weights(name: str, shape, seed: int) -> np.ndarray:
    """The float32 value of parameter ``name``: N(0, 0.1) for weight matrices and biases, 1 +
    N(0, 0.1) for norm scales; from a generator seeded by (seed, CRC-32 of the name)."""
    z = np.random.default_rng([seed, zlib.crc32(name.encode())]).standard_normal(tuple(shape))
    is_norm = "norm" in name or "ln_" in name
    base = 1.0 if is_norm and name.endswith("weight") else 0.0
    return (base + 0.1 * z).astype(np.float32)


def make_hf_model(config: tf.PretrainedConfig, seed: int = 0):
    torch = need_torch()
    model = tf.AutoModelForCausalLM.from_config(config, attn_implementation="eager").eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            p.copy_(torch.from_numpy(project_weights(name, p.shape, seed)))
    return model


def hf_logits(model, ids: np.ndarray) -> np.ndarray:
    torch = need_torch()
    with torch.no_grad():
        return model(torch.as_tensor(ids)).logits.float().numpy()


def legacy_state_dict(model) -> dict:
    """The state dict with the names and extra buffers that older hub checkpoints have:
    GPT-2 without `transformer.`, OPT without `model.`, causal-mask and rotary buffers,
    and the tied LM head stored too."""
    torch = need_torch()
    family = model.config.model_type
    sd = {k: v.detach().clone().contiguous() for k, v in model.state_dict().items()}
    n_layers = model.config.num_hidden_layers
    if family == "gpt2":
        sd = {k.removeprefix("transformer."): v for k, v in sd.items()}
        for i in range(n_layers):
            sd[f"h.{i}.attn.bias"] = torch.tril(torch.ones(1, 1, 8, 8))
            sd[f"h.{i}.attn.masked_bias"] = torch.tensor(-1e4)
    elif family == "opt":
        sd = {k.removeprefix("model."): v for k, v in sd.items()}
    elif family == "gpt_neox":
        for i in range(n_layers):
            sd[f"gpt_neox.layers.{i}.attention.bias"] = torch.tril(torch.ones(1, 1, 8, 8))
            sd[f"gpt_neox.layers.{i}.attention.masked_bias"] = torch.tensor(-1e9)
            sd[f"gpt_neox.layers.{i}.attention.rotary_emb.inv_freq"] = torch.ones(4)
    else:
        for i in range(n_layers):
            sd[f"model.layers.{i}.self_attn.rotary_emb.inv_freq"] = torch.ones(4)
    if model.config.tie_word_embeddings and "lm_head.weight" not in sd:
        sd["lm_head.weight"] = model.get_input_embeddings().weight.detach().clone()
    return sd


def legacy_config_dict(config) -> dict:
    """config.json as transformers 4.x wrote it: rope_theta / rope_scaling at top level,
    and GPT-NeoX's rotary_pct / rotary_emb_base (instead of rope_parameters)."""
    d = config.to_dict()
    rope = d.pop("rope_parameters", None)
    if rope:
        rope = dict(rope)
        theta, partial = rope.pop("rope_theta"), rope.pop("partial_rotary_factor", None)
        if d["model_type"] == "gpt_neox":
            d.update(rotary_emb_base=theta, rotary_pct=partial)
        else:
            d["rope_theta"] = theta
        d["rope_scaling"] = rope if rope.get("rope_type", "default") != "default" else None
    d.pop("layer_types", None)
    return d


def save_variants(model, root: str) -> dict[str, str]:
    """Three checkpoints of the same weights: transformers' sharded safetensors (small
    shards), a legacy pytorch_model.bin and a legacy single model.safetensors."""
    torch = need_torch()
    from safetensors.torch import save_file

    dirs = {k: os.path.join(root, k) for k in ("sharded", "bin", "legacy_safetensors")}
    model.save_pretrained(dirs["sharded"], max_shard_size="60KB")
    legacy = legacy_state_dict(model)
    for key, writer in (("bin", lambda p: torch.save(legacy, os.path.join(p, "pytorch_model.bin"))),
                        ("legacy_safetensors", lambda p: save_file(
                            legacy, os.path.join(p, "model.safetensors"), metadata={"format": "pt"}))):
        os.makedirs(dirs[key])
        with open(os.path.join(dirs[key], "config.json"), "w") as f:
            json.dump(legacy_config_dict(model.config), f)
        writer(dirs[key])
    return dirs


def random_ours(name: str, seed: int = 0, **init_kwargs):
    """Our model for variant `name`, randomly initialised (initializer_range 0.1) and then
    perturbed so that biases and norm scales are not 0 and 1. Returns (model, config)."""
    import dataclasses

    from flax import nnx

    from rce_jax.models import ModelConfig, init_model

    config = ModelConfig.from_hf_dict(variant_configs()[name].to_dict())
    config = dataclasses.replace(config, initializer_range=0.1)
    model = init_model(config, seed=seed, **init_kwargs)
    rng = np.random.default_rng(seed + 1)
    flat = nnx.to_flat_state(nnx.state(model, nnx.Param))
    nnx.update(model, nnx.from_flat_state([
        (p, v.replace(value=(v[...] + 0.1 * rng.standard_normal(v[...].shape)).astype(v[...].dtype)))
        for p, v in flat]))
    return model, config


def tiny_tokenizer(vocab_size: int):
    """A word-level fast tokenizer ("w0", "w1", ...) built locally (no download)."""
    from tokenizers import Tokenizer, models, pre_tokenizers

    vocab = {f"w{i}": i for i in range(vocab_size - 1)}
    vocab["<unk>"] = vocab_size - 1
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    return tf.PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="<unk>", eos_token="w0")
