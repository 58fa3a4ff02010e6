"""bfloat16 parameters and computation: our error against the float32 reference is no
larger than transformers' own bfloat16 error (softmax and norms stay in float32)."""

from __future__ import annotations

import jax.numpy as jnp
import ml_dtypes
import numpy as np
import pytest

from hf_tiny import SEQ, hf_logits, make_hf_model, need_torch, variant_configs
from tolerances import BF16_ERROR_RATIO_MAX
from rce_jax.models import compute_logits, forward_hidden, from_pretrained
from flax import nnx


@pytest.mark.parametrize("name", ["gpt2", "neox_parallel", "llama3_gqa_untied", "qwen2_window"])
def test_bf16_error_is_no_worse_than_transformers_bf16(name, tmp_path):
    """With dtype=bfloat16 (params and compute) the mean |logit error| against transformers'
    float32 logits is at most BF16_ERROR_RATIO_MAX (1.25) x that of transformers run in
    bfloat16, and hidden states, head and logits come out in bfloat16."""
    torch = need_torch()
    hf = make_hf_model(variant_configs()[name])
    ids = np.random.default_rng(0).integers(0, hf.config.vocab_size, (2, SEQ)).astype(np.int32)
    ref = hf_logits(hf, ids)
    hf.save_pretrained(tmp_path / "m")
    hf_bf16_err = np.abs(hf_logits(hf.to(torch.bfloat16), ids) - ref).mean()
    model, _, _ = from_pretrained(tmp_path / "m", dtype=jnp.bfloat16, tokenizer=False)
    logits = compute_logits(model, jnp.asarray(ids))
    assert logits.dtype == jnp.bfloat16
    ours_err = np.abs(np.asarray(logits.astype(jnp.float32)) - ref).mean()
    assert ours_err <= BF16_ERROR_RATIO_MAX * hf_bf16_err, (ours_err, hf_bf16_err)
    graphdef, state = nnx.split(model)
    assert forward_hidden(graphdef, state, jnp.asarray(ids)).dtype == jnp.bfloat16
    w, b = model.lm_head()
    assert w.dtype == ml_dtypes.bfloat16 and b is None


def test_param_and_compute_dtypes_are_separate(tmp_path):
    """param_dtype=bfloat16 with dtype=float32 stores bfloat16 weights and computes in float32."""
    hf = make_hf_model(variant_configs()["opt_pre_ln"])
    hf.save_pretrained(tmp_path / "m")
    model, _, _ = from_pretrained(tmp_path / "m", dtype=jnp.float32, param_dtype=jnp.bfloat16,
                                  tokenizer=False)
    assert model.layers[0].attn.q.kernel[...].dtype == jnp.bfloat16
    graphdef, state = nnx.split(model)
    ids = jnp.zeros((1, 8), jnp.int32)
    assert forward_hidden(graphdef, state, ids).dtype == jnp.float32
