"""The dispatch tells the truth: each implementation's support declaration decides the plan,
``auto`` records what it skipped and why (warning once), an explicit impl never falls back, and
an evaluation result file names the implementation that actually ran."""

import json
import warnings
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import rce_kernels
import rce_kernels.dispatch as dispatch
from rce_kernels import SUPPORT, Device, UnsupportedShapeError
from rce_kernels.dispatch import plan_fused_token_stats, plan_token_stats

HOPPER = Device("gpu", "9.0")
AMPERE = Device("gpu", "8.0")
TPU = Device("tpu")
CPU = Device("cpu")


def test_every_concrete_impl_declares_its_support():
    """Every name a plan can return has a declaration (backend, devices, dtypes, shapes)."""
    assert set(SUPPORT) == {"pallas_gpu", "pallas_tpu", "xla", "naive", "pallas_interpret",
                            "pallas_tpu_interpret"}
    for s in SUPPORT.values():
        assert s.backend and s.devices and s.dtypes and s.shapes


@pytest.mark.parametrize("device,shape,dtype,ran,reason", [
    (HOPPER, (4096, 50257), jnp.bfloat16, "pallas_gpu", None),
    (HOPPER, (4100, 50257), jnp.bfloat16, "xla", "T % 8 == 0"),  # 100514-byte rows: 8-row groups
    (HOPPER, (4096, 50257), jnp.float64, "xla", "not float64"),
    (AMPERE, (4096, 50257), jnp.bfloat16, "xla", "compute capability 9.x"),
    (TPU, (4100, 50257), jnp.float32, "pallas_tpu", None),
    (CPU, (4096, 50257), jnp.bfloat16, "xla", None),  # no kernel for CPU: nothing skipped
])
def test_auto_plans_from_the_declarations(device, shape, dtype, ran, reason):
    """auto runs the backend's kernel when its declaration takes the input, else xla, and
    names the skipped kernel with the constraint it broke."""
    plan = plan_token_stats(shape, dtype, impl="auto", device=device)
    assert plan.impl == ran
    if reason is None:
        assert plan.skipped == ()
    else:
        ((name, why),) = plan.skipped
        assert name == "pallas_gpu" and reason in why
    assert plan.record() == {"impl": "auto", "impl_ran": ran,
                             "impl_skipped": dict(plan.skipped)}


def test_fused_float32_on_hopper_falls_back_and_says_why():
    """The case of the issue: eval's fused f32 head on a Hopper GPU runs xla under auto, and the
    plan says that the GPU fused kernel takes 16-bit operands only."""
    plan = plan_fused_token_stats((512, 64), (1000, 64), jnp.float32, jnp.float32, device=HOPPER)
    assert plan.impl == "xla"
    assert plan.skipped[0][0] == "pallas_gpu" and "16-bit" in plan.skipped[0][1]
    bf16 = plan_fused_token_stats((512, 64), (1000, 64), jnp.bfloat16, jnp.bfloat16,
                                  device=HOPPER)
    assert bf16.impl == "pallas_gpu" and bf16.skipped == ()


@pytest.mark.parametrize("impl", ["pallas", "pallas_interpret"])
def test_explicit_impl_never_falls_back(impl):
    """An explicitly named kernel that cannot take the input raises one line naming why."""
    with pytest.raises(UnsupportedShapeError, match="cannot run: the GPU fused kernel") as e:
        plan_fused_token_stats((512, 64), (1000, 64), jnp.float32, jnp.float32, impl=impl,
                               device=HOPPER)
    assert "\n" not in str(e.value)
    with pytest.raises(UnsupportedShapeError, match="compute capability 9.x"):
        plan_token_stats((4096, 50257), jnp.bfloat16, impl="pallas", device=AMPERE)
    with pytest.raises(UnsupportedShapeError, match="no Pallas kernel compiles for the 'cpu'"):
        plan_token_stats((4096, 50257), jnp.bfloat16, impl="pallas", device=CPU)


def test_run_returns_the_stats_and_the_plan_that_ran(monkeypatch):
    """run_fused_token_stats on a (simulated) Hopper with f32 operands runs the XLA path (the
    kernel is refused), returns the same statistics as impl='xla' and warns once per fallback."""
    seed = int(np.random.default_rng().integers(1 << 30))
    print("seed", seed)
    k1, k2, k3 = jax.random.split(jax.random.key(seed), 3)
    h = jax.random.normal(k1, (64, 32), jnp.float32)
    w = jax.random.normal(k2, (300, 32), jnp.float32)
    y = jax.random.randint(k3, (64,), 0, 300)
    monkeypatch.setattr(Device, "default", classmethod(lambda cls: HOPPER))
    monkeypatch.setattr(dispatch, "_warned", set())
    with pytest.warns(UserWarning, match="runs xla .*pallas_gpu: the GPU fused kernel"):
        stats, plan = rce_kernels.run_fused_token_stats(h, w, y)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a second identical fallback is silent
        rce_kernels.run_fused_token_stats(h, w, y)
    assert plan.impl == "xla"
    ref = rce_kernels.fused_token_stats(h, w, y, impl="xla")
    for a, b in zip(stats, ref):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_result_file_records_the_impl_that_ran_when_auto_falls_back(tmp_path, monkeypatch):
    """An evaluation on a (simulated) Hopper GPU with float32 weights and the fused head: auto
    refuses the GPU kernel, the XLA path scores the corpus, and the result file says so
    (impl_resolved = xla, impl_skipped names pallas_gpu and why), not 'pallas_gpu'."""
    pytest.importorskip("torch")
    from eval_fixtures import make_model_dir, write_corpus

    from rce_jax.cli import main

    make_model_dir(tmp_path / "tiny", seed=0)
    write_corpus(tmp_path / "corpus.jsonl", n_docs=3, seed=1, max_words=20)
    monkeypatch.setattr(Device, "default", classmethod(lambda cls: HOPPER))
    with pytest.warns(UserWarning, match="impl='auto' runs xla"):
        assert main(["eval", "--model", str(tmp_path / "tiny"), "--data",
                     str(tmp_path / "corpus.jsonl"), "--context-length", "16", "--dtype",
                     "float32", "--out", str(tmp_path / "out"), "--no-progress",
                     "--cache-dir", str(tmp_path / "cache")]) == 0
    (result,) = [json.loads(p.read_text()) for p in Path(tmp_path / "out").glob("*.json")]
    settings = result["settings"]
    assert settings["impl"] == "auto" and settings["impl_resolved"] == "xla"
    assert "16-bit" in settings["impl_skipped"]["pallas_gpu"]
    assert result["n_tokens"] > 0


def test_dtype_auto_is_the_checkpoints_stored_dtype(tmp_path):
    """--dtype auto reads config.json's dtype (or the older torch_dtype), else the first floating
    tensor of model.safetensors (of the first shard of a sharded one), else float32
    (transformers' torch_dtype='auto' rule)."""
    from safetensors.numpy import save_file

    from rce_jax.models import stored_dtype

    def folder(name, config, tensors=None):
        d = tmp_path / name
        d.mkdir()
        (d / "config.json").write_text(json.dumps(config))
        if tensors is not None:
            save_file(tensors, str(d / "model.safetensors"))
        return d

    assert stored_dtype(folder("a", {"dtype": "bfloat16"})) == "bfloat16"
    assert stored_dtype(folder("b", {"torch_dtype": "float16"})) == "float16"
    assert stored_dtype(folder("c", {"torch_dtype": "torch.float32"})) == "float32"
    half = {"w": np.zeros((2, 2), np.float16)}
    assert stored_dtype(folder("d", {}, half)) == "float16"
    assert stored_dtype(folder("e", {})) == "float32"
    # sharded: the first shard by name, as transformers loads them
    sharded = folder("f", {})
    save_file({"a": np.zeros((2, 2), np.float16)}, str(sharded / "model-00001-of-00002.safetensors"))
    save_file({"b": np.zeros((2, 2), np.float32)}, str(sharded / "model-00002-of-00002.safetensors"))
    (sharded / "model.safetensors.index.json").write_text(json.dumps({"weight_map": {
        "b": "model-00002-of-00002.safetensors", "a": "model-00001-of-00002.safetensors"}}))
    assert stored_dtype(sharded) == "float16"
