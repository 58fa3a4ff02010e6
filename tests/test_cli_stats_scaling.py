"""`rce-jax stats` and `rce-jax scaling` on files the test writes."""

import dataclasses
import json

import numpy as np
import pytest
from np_reference import fresh_rng
from result_helpers import make_record

from rce_jax import RankStats
from rce_jax.cli import main
from rce_jax.results import write_result
from tolerances import F64_SAME_ROUTE_ABS, FIT_INTEGER_N_SLOPE_ABS


def _stats(rng, n, meta):
    count = rng.integers(0, 5, 50) * (rng.random(50) < 0.5)
    count[0] = n
    return RankStats(50, count, -rng.random(50) * count, meta=meta)


def test_stats_show_and_merge(tmp_path, capsys):
    """merge writes the sum of the inputs; show prints the decomposition of the merge."""
    rng = fresh_rng()
    a, b = _stats(rng, 10, {"model": "m"}), _stats(rng, 7, {"model": "m"})
    a.save(tmp_path / "a.npz")
    b.save(tmp_path / "b.npz")
    assert main(["stats", "merge", str(tmp_path / "a.npz"), str(tmp_path / "b.npz"),
                 "-o", str(tmp_path / "ab.npz"), "--decomposition", str(tmp_path / "ab.json")]) == 0
    merged = RankStats.load(tmp_path / "ab.npz")
    np.testing.assert_array_equal(merged.count, a.count + b.count)
    d = json.loads((tmp_path / "ab.json").read_text())
    assert d["n_tokens"] == a.n_tokens + b.n_tokens
    assert d["ce"] == pytest.approx((a + b).decompose().ce, abs=F64_SAME_ROUTE_ABS)
    capsys.readouterr()
    assert main(["stats", "show", "--json", str(tmp_path / "ab.npz")]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["ce"] == d["ce"] and shown["meta"] == {"model": "m"}


def test_stats_errors_are_reported_without_traceback(tmp_path, capsys):
    assert main(["stats", "show", str(tmp_path / "missing.npz")]) == 2
    assert "no such RankStats file" in capsys.readouterr().err
    RankStats(5, [1, 0, 0, 0, 0], [-1.0, 0, 0, 0, 0]).save(tmp_path / "one.npz")
    assert main(["stats", "merge", str(tmp_path / "one.npz"), str(tmp_path / "." / "one.npz"),
                 "-o", str(tmp_path / "two.npz")]) == 2
    assert "given more than once" in capsys.readouterr().err
    assert not (tmp_path / "two.npz").exists()
    RankStats.zeros(5).save(tmp_path / "empty.npz")
    assert main(["stats", "show", str(tmp_path / "empty.npz")]) == 2
    assert "empty RankStats" in capsys.readouterr().err
    # Merging needs no decomposition: files without tokens (an idle shard) merge fine ...
    assert main(["stats", "merge", str(tmp_path / "empty.npz"), str(tmp_path / "one.npz"),
                 "-o", str(tmp_path / "merged.npz")]) == 0
    assert RankStats.load(tmp_path / "merged.npz").n_tokens == 1
    # ... but asking for the decomposition of an empty merge fails before anything is written.
    RankStats.zeros(5).save(tmp_path / "empty2.npz")
    assert main(["stats", "merge", str(tmp_path / "empty.npz"), str(tmp_path / "empty2.npz"),
                 "-o", str(tmp_path / "none.npz"), "--decomposition", str(tmp_path / "none.json")]) == 2
    assert "empty RankStats" in capsys.readouterr().err
    assert not (tmp_path / "none.npz").exists() and not (tmp_path / "none.json").exists()
    with pytest.raises(SystemExit):
        main(["eval", "--model", "m", "--data", "d", "--context-length", "8", "--out", "o",
              "--profile-ranks", "2,x"])
    assert "--profile-ranks takes comma-separated integers, got '2,x'" in capsys.readouterr().err


def test_scaling_command_writes_tables(tmp_path, capsys):
    rng = fresh_rng()
    results = tmp_path / "results"
    results.mkdir()
    for i, n in enumerate(np.geomspace(1e6, 1e8, 4)):
        ee = 5 * n**-0.1
        rec = dataclasses.replace(make_record(rng, model=f"m{i}", family="toy", dataset="d"),
                                  n_params=int(2 * n), n_params_non_embedding=int(n),
                                  ce=ee + 1.0 + rng.random() * 0.1, ee=ee, sa=1.2, conf=0.2)
        write_result(results / f"m{i}.json", rec)
    assert main(["scaling", str(results), "--out", str(tmp_path / "report")]) == 0
    fits = json.loads((tmp_path / "report" / "scaling.json").read_text())
    ee_fit = next(r for r in fits["fits"] if r["metric"] == "ee")
    assert ee_fit["slope"] == pytest.approx(-0.1, abs=FIT_INTEGER_N_SLOPE_ABS)
    assert (tmp_path / "report" / "scaling.md").exists() and (tmp_path / "report" / "scaling.csv").exists()
    assert "4 results in 1 corpus group(s)" in capsys.readouterr().out
    (results / "hand.json").write_text(json.dumps({"model": "x", "ce": 1.0}))
    assert main(["scaling", str(results), "--out", str(tmp_path / "r2")]) == 2
    assert "hand.json: not an `rce-jax eval` result" in capsys.readouterr().err
    (results / "hand.json").unlink()
    (results / "bad.json").write_text("{not json")
    assert main(["scaling", str(results), "--out", str(tmp_path / "r2")]) == 2
    assert "bad.json: not JSON" in capsys.readouterr().err


def test_bench_help_names_the_rce_jax_command(capsys):
    """``rce-jax bench --help`` shows its usage as ``rce-jax bench``, not the module's name."""
    with pytest.raises(SystemExit) as exit_:
        main(["bench", "--help"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    usage = out.split("\n\n")[0]  # the usage block (the description below may name the module)
    assert usage.startswith("usage: rce-jax bench") and "rce_kernels" not in usage
