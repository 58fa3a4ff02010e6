"""Our Flax ports reproduce transformers' logits and parameter counts for every family variant."""

from __future__ import annotations

import dataclasses
import zlib

import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from hf_tiny import SEQ, hf_logits, make_hf_model, save_variants, variant_configs
from rce_jax.models import (RopeConfig, abstract_model, compute_logits, from_pretrained,
                            load_config, param_counts)
from tolerances import HF_PARITY_LOGITS_ABS, MISMAPPED_LOGITS_MIN, REFERENCE_LOGITS_STD_MIN

TOL = HF_PARITY_LOGITS_ABS
FORMATS = ("sharded", "bin", "legacy_safetensors")


@pytest.fixture(scope="module", params=list(variant_configs()))
def variant(request, tmp_path_factory):
    name = request.param
    hf_model = make_hf_model(variant_configs()[name])
    rng = np.random.default_rng(zlib.crc32(name.encode()))
    ids = rng.integers(0, hf_model.config.vocab_size, (2, SEQ)).astype(np.int32)
    return {"name": name, "ids": ids, "ref": hf_logits(hf_model, ids),
            "num_parameters": hf_model.num_parameters(),
            "dirs": save_variants(hf_model, str(tmp_path_factory.mktemp(name)))}


def _load(path):
    with pytest.warns(UserWarning, match="no tokenizer"):
        return from_pretrained(path)


@pytest.mark.parametrize("fmt", FORMATS)
def test_logits_match_transformers(variant, fmt):
    """float32 logits on 272 tokens equal transformers' (eager attention, float32) to 1e-4
    max-abs, from sharded safetensors, a legacy pytorch_model.bin and a legacy single
    safetensors file (old tensor names, extra buffers, tied head stored)."""
    model, config, tokenizer = _load(variant["dirs"][fmt])
    assert tokenizer is None
    ours = np.asarray(compute_logits(model, jnp.asarray(variant["ids"])))
    ref = variant["ref"]
    assert ours.shape == ref.shape and ours.dtype == np.float32
    assert ref.std() > REFERENCE_LOGITS_STD_MIN, "reference logits too small for a meaningful comparison"
    np.testing.assert_allclose(ours, ref, rtol=0, atol=TOL)


def test_parameter_counts_match_transformers(variant):
    """total == transformers' num_parameters() (a tie is one parameter); non_embedding is
    total minus token embeddings, learned positions and an untied head."""
    model, config, _ = _load(variant["dirs"]["sharded"])
    counts = param_counts(model, config)
    assert counts["total"] == variant["num_parameters"]
    emb = config.vocab_size * config.word_embed_proj_dim
    emb *= 1 if config.tie_word_embeddings else 2
    if config.learned_positions:
        emb += config.num_position_embeddings * config.hidden_size
    assert counts["non_embedding"] == counts["total"] - emb
    tied_params = [p for p, _ in nnx.to_flat_state(nnx.state(model, nnx.Param)) if p == ("unembed",)]
    assert bool(tied_params) != config.tie_word_embeddings


def test_old_and_new_config_keys_agree(variant):
    """transformers-4 keys (rope_theta, rope_scaling, rotary_pct, rotary_emb_base) and
    transformers-5 keys (rope_parameters, partial_rotary_factor) give the same config,
    and to_hf_dict -> from_hf_dict is the identity."""
    new = load_config(variant["dirs"]["sharded"])
    old = load_config(variant["dirs"]["legacy_safetensors"])
    assert new == old
    assert type(new).from_hf_dict(new.to_hf_dict()) == new


_WITHOUT_FEATURE = {
    "mistral_window": lambda c: dataclasses.replace(c, sliding_window=None, layer_types=None),
    "qwen2_window": lambda c: dataclasses.replace(c, sliding_window=None, layer_types=None),
    "llama3_gqa_untied": lambda c: dataclasses.replace(c, rope=RopeConfig(theta=c.rope.theta)),
    "llama_linear_tied": lambda c: dataclasses.replace(c, rope=RopeConfig(theta=c.rope.theta)),
    "neox_parallel": lambda c: dataclasses.replace(c, parallel_residual=False),
    "opt_post_ln_proj": lambda c: dataclasses.replace(c, pre_layer_norm=True, final_norm=False),
    "neox_sequential": lambda c: dataclasses.replace(c, parallel_residual=True),
    "gpt2_layer_scaled": lambda c: dataclasses.replace(c, scale_attn_by_inverse_layer_idx=False),
}


@pytest.mark.parametrize("variant", list(_WITHOUT_FEATURE), indirect=True)
def test_the_variant_feature_matters(variant):
    """Dropping the variant's feature (sliding window, rope scaling, parallel residual,
    post-LN) moves the logits far from transformers': the inputs are long enough to test it."""
    model, config, _ = _load(variant["dirs"]["sharded"])
    other = _WITHOUT_FEATURE[variant["name"]](config)
    graphdef, _ = nnx.split(abstract_model(other))
    changed = nnx.merge(graphdef, nnx.state(model))
    ours = np.asarray(compute_logits(changed, jnp.asarray(variant["ids"])))
    assert np.abs(ours - variant["ref"]).max() > MISMAPPED_LOGITS_MIN
