"""The kernel benchmark runs end to end on CPU and writes its Markdown table and JSON."""

import json

import pytest
from rce_kernels import bench


def test_bench_quick_writes_table_and_json(tmp_path):
    """`--quick` with tiny shapes measures the device rates and every section (token statistics
    with the XLA, jnp and torch-eager baselines; fused; proxy loss vs optax CE) and writes
    bench.md and bench.json (no temporary files left behind)."""
    pytest.importorskip("torch", reason="the torch-eager baseline needs torch")
    out = tmp_path / "results"
    result = bench.main([
        "--quick", "--out", str(out), "--T", "64", "--V", "300", "--hidden", "16",
        "--dtypes", "f32", "--repeats", "1", "--inner", "1",
        "--impls", "xla,naive,torch_eager,materialised,proxy,ce,proxy_fused,ce_materialised",
    ])
    assert sorted(p.name for p in out.iterdir()) == ["bench.json", "bench.md"]
    saved = json.loads((out / "bench.json").read_text())
    assert saved["rates"]["copy_gbps"] > 0 and saved["rates"]["matmul_tflops"] > 0
    impls = {s: {r["impl"] for r in saved[s]} for s in ("token_stats", "fused", "loss")}
    assert impls["token_stats"] >= {"xla", "naive", "torch_eager"}
    assert impls["fused"] == {"xla", "materialised"}
    assert impls["loss"] == {"proxy", "ce", "proxy_fused", "ce_materialised"}
    for section in ("token_stats", "fused", "loss"):
        for record in saved[section]:
            assert "error" not in record, record
            assert record["seconds"] > 0
    text = (out / "bench.md").read_text()
    assert "## Token statistics" in text and "% copy bw" in text and "TFLOP/s" in text
    assert result["meta"]["backend"] == "cpu"


def test_bench_rejects_unknown_names():
    """Unknown implementation or section names are refused by the argument parser."""
    with pytest.raises(SystemExit):
        bench.parse_args(["--impls", "cuda_magic"])
