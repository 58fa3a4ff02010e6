"""save_pretrained writes Hugging Face directories that transformers loads with our logits,
and that from_pretrained reads back exactly (one weight map, used both ways)."""

from __future__ import annotations

import json
import os

import jax.numpy as jnp
import ml_dtypes
import numpy as np
import pytest
import transformers as tf
from flax import nnx
from safetensors.numpy import load_file

from hf_tiny import SEQ, hf_logits, need_torch, random_ours, tiny_tokenizer
from rce_jax.models import (compute_logits, from_pretrained, init_model, param_counts,
                            save_pretrained)
from rce_jax.sharding import path_str
from tolerances import (HF_PARITY_LOGITS_ABS, INIT_STD_EMBEDDING_REL, INIT_STD_KERNEL_REL,
                        REFERENCE_LOGITS_STD_MIN)

CASES = ["gpt2", "gpt2_layer_scaled", "neox_parallel", "neox_sequential", "opt_pre_ln", "opt_post_ln_proj",
         "llama3_gqa_untied", "llama_linear_tied", "llama_plain", "mistral_window", "qwen2_tied",
         "qwen2_window"]


def _params(model) -> dict[str, np.ndarray]:
    return {path_str(p): np.asarray(v[...]) for p, v in
            nnx.to_flat_state(nnx.state(model, nnx.Param))}


@pytest.mark.parametrize("name", CASES)
def test_transformers_loads_our_export(name, tmp_path):
    """A random model of every family variant, exported, loads in transformers'
    AutoModelForCausalLM with logits equal to ours (1e-4, float32, 272 tokens) and the same
    parameter count; from_pretrained reads the export back bit-exactly with the same config."""
    need_torch()
    model, config = random_ours(name)
    out = save_pretrained(model, config, tmp_path / "export")
    ids = np.random.default_rng(1).integers(0, config.vocab_size, (2, SEQ)).astype(np.int32)
    ours = np.asarray(compute_logits(model, jnp.asarray(ids)))
    hf = tf.AutoModelForCausalLM.from_pretrained(out, attn_implementation="eager").eval()
    ref = hf_logits(hf, ids)
    assert ref.std() > REFERENCE_LOGITS_STD_MIN
    np.testing.assert_allclose(ours, ref, rtol=0, atol=HF_PARITY_LOGITS_ABS)
    assert hf.num_parameters() == param_counts(model, config)["total"]
    with pytest.warns(UserWarning, match="no tokenizer"):
        back, back_config, _ = from_pretrained(out)
    assert back_config == config
    want, got = _params(model), _params(back)
    assert want.keys() == got.keys()
    for k in want:
        np.testing.assert_array_equal(got[k], want[k], err_msg=k)


def test_sharded_bf16_export_with_tokenizer(tmp_path):
    """A bfloat16 export split into shards (index json), with a tokenizer: transformers loads
    bfloat16 weights equal to ours, from_pretrained returns the same weights and a working
    tokenizer, and re-exporting as one file removes the old shards and index."""
    torch = need_torch()
    model, config = random_ours("llama3_gqa_untied", dtype=jnp.bfloat16)
    tok = tiny_tokenizer(config.vocab_size)
    out = save_pretrained(model, config, tmp_path / "export", tok, max_shard_bytes=40_000)
    files = sorted(os.listdir(out))
    assert "model.safetensors.index.json" in files and "model.safetensors" not in files
    shards = [f for f in files if f.startswith("model-")]
    assert len(shards) > 1
    with open(os.path.join(out, "config.json")) as f:
        assert json.load(f)["torch_dtype"] == "bfloat16"
    hf = tf.AutoModelForCausalLM.from_pretrained(out, dtype=torch.bfloat16)
    emb = hf.get_input_embeddings().weight
    assert emb.dtype == torch.bfloat16
    np.testing.assert_array_equal(emb.detach().float().numpy(),
                                  np.asarray(model.embed.embedding[...]).astype(np.float32))
    back, _, back_tok = from_pretrained(out, dtype=jnp.bfloat16)
    for k, v in _params(model).items():
        assert _params(back)[k].dtype == ml_dtypes.bfloat16
        np.testing.assert_array_equal(_params(back)[k], v, err_msg=k)
    assert back_tok is not None and back_tok("w5 w7")["input_ids"] == [5, 7]

    sharded_names = set().union(*(load_file(os.path.join(out, f)) for f in shards))
    save_pretrained(model, config, out)  # one file now
    files = sorted(os.listdir(out))
    assert "model.safetensors" in files
    assert not [f for f in files if f.startswith("model-") or f.endswith("index.json")]
    assert set(load_file(os.path.join(out, "model.safetensors"))) == sharded_names


def test_init_model_statistics():
    """init_model follows transformers' scheme: N(0, initializer_range^2) weights (GPT-2's
    residual output projections / sqrt(2 n_layer)), zero biases, unit norm scales; the same
    seed gives the same values, another seed different ones."""
    from rce_jax.models import ModelConfig

    config = ModelConfig(family="gpt2", vocab_size=4096, hidden_size=128, num_layers=4,
                         num_heads=4, intermediate_size=512, max_position_embeddings=64)
    p = _params(init_model(config, seed=0))
    assert abs(p["embed.embedding"].std() - 0.02) < 0.02 * INIT_STD_EMBEDDING_REL
    assert abs(p["layers.0.mlp.up.kernel"].std() - 0.02) < 0.02 * INIT_STD_KERNEL_REL
    assert abs(p["layers.0.attn.o.kernel"].std() - 0.02 / np.sqrt(8)) < 0.02 / np.sqrt(8) * INIT_STD_KERNEL_REL
    assert not p["layers.1.attn.qkv.bias"].any()
    np.testing.assert_array_equal(p["final_norm.scale"], 1.0)
    again, other = _params(init_model(config, seed=0)), _params(init_model(config, seed=1))
    np.testing.assert_array_equal(again["embed.embedding"], p["embed.embedding"])
    assert not np.array_equal(other["embed.embedding"], p["embed.embedding"])
