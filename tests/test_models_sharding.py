"""Sharded models (meshes data x model) compute the single-device logits; partition rules
cover every parameter and replicate dimensions that the mesh does not divide."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from jax.sharding import AbstractMesh, PartitionSpec as P

from hf_tiny import make_hf_model, variant_configs
from rce_jax.models import FAMILIES, ModelConfig, abstract_model
from rce_jax.sharding import fit_spec, param_sharding, partition_spec, path_str
from tolerances import SAME_MODEL_LOGITS_ABS

MESH_VARIANTS = ["gpt2", "neox_parallel", "opt_post_ln_proj", "llama3_gqa_untied",
                 "mistral_window", "qwen2_window"]
HERE = os.path.dirname(os.path.abspath(__file__))


@pytest.fixture(scope="module")
def mesh_results(tmp_path_factory):
    root = tmp_path_factory.mktemp("mesh")
    dirs = []
    for name in MESH_VARIANTS:
        d = str(root / name)
        make_hf_model(variant_configs()[name]).save_pretrained(d, max_shard_size="60KB")
        dirs.append(d)
    out = str(root / "results.json")
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=8",
               JAX_PLATFORMS="cpu",
               PYTHONPATH=os.pathsep.join([os.path.dirname(HERE), os.path.join(os.path.dirname(HERE), "kernels")]))
    proc = subprocess.run([sys.executable, os.path.join(HERE, "models_mesh_worker.py"), out, *dirs],
                          env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-5000:]
    with open(out) as f:
        results = json.load(f)
    return {name: results[d] for name, d in zip(MESH_VARIANTS, dirs)}


@pytest.mark.parametrize("name", MESH_VARIANTS)
@pytest.mark.parametrize("mesh", ["8x1", "2x4"])
def test_sharded_logits_equal_single_device(mesh_results, name, mesh):
    """On 8 simulated devices, meshes 8x1 and 2x4 give the single-device logits to 1e-5
    (plain and packed rows); the output is sharded on 'data'; init_model gives the same
    values with and without a mesh; loading reads each distinct block of the checkpoint once,
    however many devices hold it."""
    r = mesh_results[name][mesh]
    assert r["max_diff"] <= SAME_MODEL_LOGITS_ABS and r["max_diff_segments"] <= SAME_MODEL_LOGITS_ABS
    assert r["output_spec"].startswith("('data',")
    assert r["init_same_as_single_device"]
    assert r["specs"] == r["init_specs"]
    assert r["checkpoint_reads"] == r["distinct_blocks"]


def test_rules_shard_what_divides_and_replicate_the_rest(mesh_results):
    """On the 2x4 mesh: heads and MLP columns are split on 'model'; GPT-2's vocabulary 1001
    and its 3 heads, and Llama's 2 KV heads, are replicated instead."""
    gpt2 = mesh_results["gpt2"]["2x4"]["specs"]
    assert gpt2["embed.embedding"] == "(None, None)"
    assert gpt2["layers.0.attn.qkv.kernel"] == "(None, None, None, None)"
    assert gpt2["layers.0.mlp.up.kernel"] == "(None, 'model')"
    llama = mesh_results["llama3_gqa_untied"]["2x4"]["specs"]
    assert llama["embed.embedding"] == "('model', None)"
    assert llama["unembed"] == "('model', None)"
    assert llama["layers.0.attn.q.kernel"] == "(None, 'model', None)"
    assert llama["layers.0.attn.k.kernel"] == "(None, None, None)"
    assert llama["layers.0.attn.o.kernel"] == "('model', None, None)"
    assert llama["layers.0.mlp.down.kernel"] == "('model', None)"
    qwen = mesh_results["qwen2_window"]["2x4"]["specs"]
    assert qwen["layers.0.attn.q.bias"] == "('model', None)"


@pytest.mark.parametrize("name", list(variant_configs()))
def test_every_parameter_has_a_rule(name):
    """Every parameter of every variant gets a sharding from its family's rules through
    ``param_sharding``, the call the checkpoint loader and ``init_model`` place each parameter
    with: a NamedSharding on the mesh whose spec has no more axes than the parameter."""
    config = ModelConfig.from_hf_dict(variant_configs()[name].to_dict())
    from flax import nnx

    mesh = AbstractMesh((2, 4), ("data", "model"))
    params = nnx.to_flat_state(nnx.state(abstract_model(config)))
    assert params
    for path, value in params:  # param_sharding raises if a parameter has no rule
        shape = value.get_value().shape
        sharding = param_sharding(path_str(path), shape, config.family, mesh)
        assert sharding.mesh == mesh and len(sharding.spec) <= len(shape), path
    assert config.family in FAMILIES


def test_fit_spec_and_unknown_parameter():
    """fit_spec drops a mesh axis that does not divide its dimension; a parameter no rule
    matches is an error naming it."""
    mesh = AbstractMesh((2, 4), ("data", "model"))
    assert fit_spec(P("model", None), (1001, 64), mesh) == P(None, None)
    assert fit_spec(P("model", None), (1024, 64), mesh) == P("model", None)
    assert fit_spec(P(("data", "model"),), (16,), mesh) == P(("data", "model"))
    assert fit_spec(P(("data", "model"),), (12,), mesh) == P(None)
    with pytest.raises(ValueError, match="layers.0.attn.nope"):
        partition_spec("layers.0.attn.nope", (3,), "llama", mesh)
