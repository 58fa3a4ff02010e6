"""rce_jax.bench.eval (``experiments/bench_eval.py``, issue 5's evaluation benchmark) on a tiny
model, in float32.

The benchmark's comparison side (transformers logits, ranks and log-softmax in torch, per-rank
bincount sums) is an independent computation of the decomposition: on the same windows it must
score the same tokens and, in float32, give the same CE, EE, SA and Conf as ``rce-jax eval``.
"""

import json

import pytest
from tolerances import DECOMPOSITION_TWO_IMPLEMENTATIONS_ABS

from rce_jax.bench import eval as bench


def test_tiny_float32_run_agrees_with_transformers_and_writes_its_tables(tmp_path):
    pytest.importorskip("torch", reason="the benchmark's comparison side runs transformers in torch")
    out = tmp_path / "bench"
    result = bench.main(["--tiny", "--dtype", "float32", "--corpus", "python-docs@heldout",
                         "--max-tokens", "2048", "--out", str(out)])
    assert result["n_tokens"] >= 2048
    for key in ("ce", "ee", "sa", "conf"):
        assert result["abs_diff"][key] <= DECOMPOSITION_TWO_IMPLEMENTATIONS_ABS, (key, result["abs_diff"])
    assert 0.0 <= result["statistics_share_of_step"] < 1.0
    assert [r["tokens_per_s"] > 0 for r in result["rows"]] == [True] * 5
    saved = json.loads((out / "bench_eval.json").read_text())
    assert saved["n_tokens"] == result["n_tokens"]
    assert "| transformers |" in (out / "bench_eval.md").read_text()
