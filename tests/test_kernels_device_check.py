"""``python -m rce_kernels.device_check --tiny`` runs end to end on CPU (the kernels in interpret
mode, every benchmark section, the end-to-end evaluation), writes its JSON and Markdown, and
fails loudly on a correctness mismatch."""

import json

import numpy as np
import pytest
from rce_kernels import device_check
from tolerances import F64_TWO_ROUTES_REL


def test_tiny_run_checks_every_kernel_and_writes_its_table(tmp_path):
    """Every correctness case passes (both interpret-mode kernels, bf16 and f32, a row width that
    needs TMA row groups (4099), with and without vocab_limit, fused and materialised); every
    benchmark section and the end-to-end comparison produce rows naming what ran."""
    out = tmp_path / "dc"
    assert device_check.main(["--tiny", "--out", str(out)]) == 0
    result = json.loads((out / "device_check.json").read_text())
    assert result["passed"]
    cases = [r["case"] for r in result["correctness"] if "skipped" not in r]
    for impl in ("pallas_interpret", "pallas_tpu_interpret"):
        for dn in ("bf16", "f32"):
            assert any(c.startswith(f"{impl} ") and "V=4099" in c and dn in c
                       and "limit=4042" in c for c in cases), (impl, dn)
        assert any(c.startswith(f"fused {impl} ") for c in cases)
    perf = result["performance"]
    assert {"token_stats", "token_stats_f32", "fused", "loss"} <= set(perf)
    assert list(result["end_to_end"]) and "skipped" not in result["end_to_end"]
    assert perf["token_stats"]["rates"]["copy_gbps"] > 0
    assert all("ran" in r for r in perf["token_stats"]["token_stats"] if "error" not in r)
    assert {r["impl"] for r in perf["loss"]["loss"]} == {"proxy", "ce", "proxy_fused",
                                                          "ce_materialised"}
    assert result["end_to_end"]["rows"] and result["end_to_end"]["impl_resolved"] == "xla"
    text = (out / "device_check.md").read_text()
    assert "Correctness: **PASS**" in text and "## End to end" in text


def test_a_wrong_rank_fails_loudly(tmp_path, monkeypatch, capsys):
    """A kernel that returns one wrong rank makes the run exit 1, with the case marked FAIL at
    the top of the table and named on stderr; the files are still written."""
    real = device_check.run_token_stats

    def off_by_one(z, y, **kw):
        (logp, rank, ties), plan = real(z, y, **kw)
        return (logp, rank.at[3].add(1), ties), plan

    monkeypatch.setattr(device_check, "run_token_stats", off_by_one)
    monkeypatch.setattr(device_check, "TINY", device_check.dataclasses.replace(
        device_check.TINY, check_T=16, check_V=(300,)))
    monkeypatch.setattr(device_check, "check_fused", lambda *a: [])
    monkeypatch.setattr(device_check, "performance", lambda *a: {})
    monkeypatch.setattr(device_check, "end_to_end", lambda *a: {"skipped": "not in this test"})
    out = tmp_path / "dc"
    assert device_check.main(["--tiny", "--out", str(out), "--seed", "3"]) == 1
    result = json.loads((out / "device_check.json").read_text())
    failed = [r for r in result["correctness"] if not r["ok"]]
    assert failed and all(r["rank_mismatch"] == 1 for r in failed)
    assert "CORRECTNESS FAILED" in capsys.readouterr().err
    table = (out / "device_check.md").read_text().splitlines()
    first_row = table[table.index("|---|---|---:|---:|---:|---|") + 1]
    assert "**FAIL**" in first_row


def test_reference_counts_ties_and_ranks_like_the_definition():
    """The float64 reference: rank = entries strictly greater, ties = other entries equal."""
    z = np.array([[1.0, 3.0, 3.0, 2.0, 3.0]])
    logp, rank, ties = device_check.reference_stats(z, np.array([2]), 5)
    assert rank[0] == 0 and ties[0] == 2
    logp, rank, ties = device_check.reference_stats(z, np.array([3]), 4)  # limit drops col 4
    assert rank[0] == 2 and ties[0] == 0
    np.testing.assert_allclose(logp[0], 2.0 - np.log(np.exp([1.0, 3.0, 3.0, 2.0]).sum()), rtol=F64_TWO_ROUTES_REL)


def test_out_that_is_a_file_is_refused(tmp_path):
    (tmp_path / "f").write_text("x")
    with pytest.raises(SystemExit, match="not a folder"):
        device_check.main(["--tiny", "--out", str(tmp_path / "f")])
