"""Bad checkpoints and unsupported configs are refused with an error that names the problem;
paths resolve to local directories or to snapshots in the local Hugging Face cache."""

from __future__ import annotations

import json
import os
import shutil
import sys

import numpy as np
import pytest
from safetensors.numpy import load_file, save_file

from hf_tiny import make_hf_model, need_torch, tiny_tokenizer, variant_configs
from rce_jax.models import (CheckpointError, ModelConfig, UnsupportedConfigError,
                            from_pretrained)


@pytest.fixture(scope="module")
def good_dir(tmp_path_factory):
    """A tiny Llama checkpoint as one model.safetensors file (and its tokenizer)."""
    d = str(tmp_path_factory.mktemp("good"))
    make_hf_model(variant_configs()["llama3_gqa_untied"]).save_pretrained(d)
    tiny_tokenizer(1024).save_pretrained(d)
    return d


def _copy(good_dir, tmp_path, edit_tensors=None, edit_config=None):
    d = str(tmp_path / "ckpt")
    shutil.copytree(good_dir, d)
    if edit_tensors:
        path = os.path.join(d, "model.safetensors")
        tensors = load_file(path)
        edit_tensors(tensors)
        save_file(tensors, path, metadata={"format": "pt"})
    if edit_config:
        with open(os.path.join(d, "config.json")) as f:
            cfg = json.load(f)
        edit_config(cfg)
        with open(os.path.join(d, "config.json"), "w") as f:
            json.dump(cfg, f)
    return d


def test_good_checkpoint_loads_with_tokenizer(good_dir):
    """The unmodified copy loads, with its tokenizer."""
    model, config, tok = from_pretrained(good_dir)
    assert config.family == "llama" and tok("w3 w4")["input_ids"] == [3, 4]


def test_missing_unexpected_and_misshaped_tensors_in_one_error(good_dir, tmp_path):
    """One CheckpointError lists the missing tensor, the unexpected tensor and the tensor
    with the wrong shape (with both shapes)."""
    def edit(t):
        del t["model.layers.1.mlp.up_proj.weight"]
        t["model.layers.0.self_attn.extra_proj.weight"] = np.zeros((2, 2), np.float32)
        t["model.layers.0.self_attn.q_proj.weight"] = np.zeros((64, 63), np.float32)

    with pytest.raises(CheckpointError) as e:
        from_pretrained(_copy(good_dir, tmp_path, edit), tokenizer=False)
    msg = str(e.value)
    assert "missing tensors (1)" in msg and "model.layers.1.mlp.up_proj.weight" in msg
    assert "unexpected tensors (1)" in msg and "self_attn.extra_proj.weight" in msg
    assert "wrong shape (1)" in msg and "q_proj.weight: checkpoint shape (64, 63)" in msg
    assert "(64, 64)" in msg


@pytest.mark.parametrize("problem", ["missing", "unexpected", "shape"])
def test_each_checkpoint_problem_alone(good_dir, tmp_path, problem):
    """Each kind of mismatch on its own is reported under its own heading."""
    edits = {
        "missing": lambda t: t.pop("lm_head.weight"),
        "unexpected": lambda t: t.__setitem__("model.extra", np.zeros(3, np.float32)),
        "shape": lambda t: t.__setitem__("model.norm.weight", np.ones(65, np.float32)),
    }
    heading = {"missing": "missing tensors (1):\n    lm_head.weight",
               "unexpected": "unexpected tensors (1):\n    model.extra",
               "shape": "wrong shape (1):\n    model.norm.weight"}[problem]
    with pytest.raises(CheckpointError, match="does not match") as e:
        from_pretrained(_copy(good_dir, tmp_path, edits[problem]), tokenizer=False)
    assert heading in str(e.value)


def test_truncated_safetensors(good_dir, tmp_path):
    """A truncated safetensors file is refused, naming the file."""
    d = _copy(good_dir, tmp_path)
    path = os.path.join(d, "model.safetensors")
    size = os.path.getsize(path)
    with open(path, "r+b") as f:
        f.truncate(size - 1000)
    with pytest.raises(CheckpointError, match="truncated or corrupt") as e:
        from_pretrained(d, tokenizer=False)
    assert path in str(e.value)


def test_index_naming_a_missing_shard(good_dir, tmp_path):
    """A sharded index that names a file which does not exist is refused, naming the file."""
    d = _copy(good_dir, tmp_path)
    os.remove(os.path.join(d, "model.safetensors"))
    with open(os.path.join(d, "model.safetensors.index.json"), "w") as f:
        json.dump({"weight_map": {"model.norm.weight": "model-00001-of-00002.safetensors"}}, f)
    with pytest.raises(CheckpointError, match="model-00001-of-00002.safetensors"):
        from_pretrained(d, tokenizer=False)


def test_tensor_in_two_shards_is_named_as_a_duplicate(good_dir, tmp_path):
    """Two shard files holding the same tensor are refused as such, not as a corrupt file."""
    d = _copy(good_dir, tmp_path)
    tensors = load_file(os.path.join(d, "model.safetensors"))
    os.remove(os.path.join(d, "model.safetensors"))
    names = sorted(tensors)
    first, second = names[: len(names) // 2], names[len(names) // 2 - 1:]  # one name in both
    save_file({k: tensors[k] for k in first}, os.path.join(d, "a.safetensors"))
    save_file({k: tensors[k] for k in second}, os.path.join(d, "b.safetensors"))
    weight_map = {**{k: "a.safetensors" for k in first}, **{k: "b.safetensors" for k in second}}
    with open(os.path.join(d, "model.safetensors.index.json"), "w") as f:
        json.dump({"weight_map": weight_map}, f)
    with pytest.raises(CheckpointError, match=f"tensor '{first[-1]}' appears in both") as e:
        from_pretrained(d, tokenizer=False)
    assert "corrupt" not in str(e.value)


@pytest.mark.parametrize("edit, attribute", [
    (lambda c: c.update(rope_parameters={"rope_type": "yarn", "factor": 4.0,
                                         "rope_theta": 1e4}), "yarn"),
    (lambda c: c.update(rope_parameters=None, rope_scaling={"type": "dynamic", "factor": 2.0}),
     "dynamic"),
    (lambda c: c.update(rope_parameters={"rope_type": "llama3", "rope_theta": 1e4}), "factor"),
    (lambda c: c.update(hidden_act="gelu_10"), "hidden_act"),
    (lambda c: c.update(partial_rotary_factor=0.5), "partial_rotary_factor"),
    (lambda c: c.update(model_type="bert"), "bert"),
])
def test_unsupported_config_values_are_refused(good_dir, tmp_path, edit, attribute):
    """A config value the port does not implement raises UnsupportedConfigError naming it."""
    with pytest.raises(UnsupportedConfigError, match=attribute):
        from_pretrained(_copy(good_dir, tmp_path, edit_config=edit), tokenizer=False)


@pytest.mark.parametrize("config, attribute", [
    ({"model_type": "gpt2", "add_cross_attention": True}, "add_cross_attention"),
    ({"model_type": "gpt2", "scale_attn_weights": False}, "scale_attn_weights"),
    ({"model_type": "opt", "layer_norm_elementwise_affine": False},
     "layer_norm_elementwise_affine"),
    ({"model_type": "opt", "activation_function": "quick_gelu"}, "activation_function"),
    ({"model_type": "gpt_neox", "rope_scaling": {"rope_type": "longrope"}}, "longrope"),
    ({"model_type": "llama", "rope_scaling": {"rope_type": "linear", "factor": 2.0,
                                              "mscale": 1.0}}, "mscale"),
])
def test_unsupported_family_features(config, attribute):
    """Family features without an implementation are refused by ModelConfig.from_hf_dict."""
    with pytest.raises(UnsupportedConfigError, match=attribute):
        ModelConfig.from_hf_dict(config)


def test_missing_weights_and_paths(tmp_path):
    """No weights, no config.json, and a name that is neither a directory nor cached are
    FileNotFoundErrors that say what was looked for."""
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="config.json"):
        from_pretrained(tmp_path / "empty")
    with open(tmp_path / "empty" / "config.json", "w") as f:
        json.dump(variant_configs()["gpt2"].to_dict(), f)
    with pytest.raises(FileNotFoundError, match="no weights found"):
        from_pretrained(tmp_path / "empty", tokenizer=False)
    with pytest.raises(FileNotFoundError, match="not in the local Hugging Face cache"):
        from_pretrained("nobody/no-such-model", cache_dir=str(tmp_path / "hub"))


def test_bin_without_torch_is_a_clear_error(good_dir, tmp_path, monkeypatch):
    """A pytorch_model.bin-only checkpoint without torch installed says that torch is needed."""
    d = _copy(good_dir, tmp_path)
    os.remove(os.path.join(d, "model.safetensors"))
    open(os.path.join(d, "pytorch_model.bin"), "wb").close()
    monkeypatch.setitem(sys.modules, "torch", None)
    with pytest.raises(CheckpointError, match="needs torch"):
        from_pretrained(d, tokenizer=False)


def test_repo_id_resolves_in_local_hf_cache(good_dir, tmp_path):
    """A repo id is looked up offline in the Hugging Face cache layout
    (models--org--name/refs/main -> snapshots/<commit>)."""
    repo = tmp_path / "hub" / "models--tiny-org--tiny-llama"
    commit = "0123456789abcdef0123456789abcdef01234567"
    shutil.copytree(good_dir, repo / "snapshots" / commit)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    model, config, tok = from_pretrained("tiny-org/tiny-llama", cache_dir=str(tmp_path / "hub"))
    assert config.family == "llama" and tok is not None


def test_sequence_longer_than_learned_positions():
    """A GPT-2/OPT input longer than max_position_embeddings is refused (no silent clamp)."""
    import jax.numpy as jnp

    from hf_tiny import random_ours

    model, config = random_ours("gpt2")
    with pytest.raises(ValueError, match="exceeds max_position_embeddings=320"):
        model.hidden_states(jnp.zeros((1, 321), jnp.int32))


def test_sharded_pytorch_bin_with_index(good_dir, tmp_path):
    """A state dict split over two .bin files with pytorch_model.bin.index.json loads to the
    same parameters as the safetensors original."""
    from flax import nnx

    torch = need_torch()
    d = _copy(good_dir, tmp_path)
    tensors = load_file(os.path.join(d, "model.safetensors"))
    os.remove(os.path.join(d, "model.safetensors"))
    names = sorted(tensors)
    weight_map = {}
    for i, part in enumerate((names[::2], names[1::2])):
        fname = f"pytorch_model-0000{i + 1}-of-00002.bin"
        torch.save({k: torch.from_numpy(tensors[k]) for k in part}, os.path.join(d, fname))
        weight_map.update({k: fname for k in part})
    with open(os.path.join(d, "pytorch_model.bin.index.json"), "w") as f:
        json.dump({"metadata": {}, "weight_map": weight_map}, f)
    a, _, _ = from_pretrained(good_dir, tokenizer=False)
    b, _, _ = from_pretrained(d, tokenizer=False)
    for (pa, va), (pb, vb) in zip(nnx.to_flat_state(nnx.state(a, nnx.Param)),
                                  nnx.to_flat_state(nnx.state(b, nnx.Param))):
        assert pa == pb
        np.testing.assert_array_equal(np.asarray(va[...]), np.asarray(vb[...]))
