"""The multi-model study of issue 12 end to end, as a new user runs it from the command line.

Three models trained with ``rce-jax train`` into ``runs/*/`` (so all three folders are called
``model``), evaluated on two corpora that share a base name (``a/test.jsonl``, ``b/test.jsonl``)
at two context lengths into one ``--out``, then ``rce-jax scaling``: no collision, nothing
silently dropped, the same corpus spelled another way is the same result.
"""

import json
import os

import pytest
from train_helpers import tiny_config_dict, write_corpus

from rce_jax.cli import main

PRESETS = ("quick-1", "quick-2", "quick-3")
CONTEXTS = (16, 32)


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    root = tmp_path_factory.mktemp("study")
    config = root / "train.json"
    config.write_text(json.dumps(tiny_config_dict(root, steps=3, save_every=3, **{"eval.every": 0})))
    for preset in PRESETS:
        assert main(["train", "--config", str(config), "--preset", preset, "--out",
                     str(root / "runs" / preset), "--no-progress"]) == 0
    for name, seed in (("a", 11), ("b", 12)):
        (root / "data" / name).mkdir(parents=True)
        write_corpus(root / "data" / name / "test.jsonl", 6, seed=seed)
    return root


def _eval(root, *extra):
    models = [a for p in PRESETS for a in ("--model", str(root / "runs" / p / "model"))]
    return main(["eval", *models, "--out", str(root / "res"), "--no-progress",
                 "--cache-dir", str(root / "tokens"), *extra])


def test_study_runs_without_collision_and_fits_every_group(study, capsys):
    """3 models x 2 corpora x 2 context lengths give 12 distinct result files in one folder; the
    same corpus given by a relative path is the same result (skipped, not a 13th file); scaling
    forms exactly the 4 corpus groups (by fingerprint and context length, not by path or base
    name), prints them, fits the llama family in each from 3 sizes, and warns of nothing."""
    root = study
    data = ["--data", str(root / "data" / "a" / "test.jsonl"), "--data", str(root / "data" / "b" / "test.jsonl")]
    for L in CONTEXTS:
        assert _eval(root, *data, "--context-length", str(L)) == 0
    files = sorted((root / "res").glob("*.json"))
    assert len(files) == 12
    records = [json.loads(f.read_text()) for f in files]
    keys = {(r["model_path"], r["corpus_fingerprint"], r["settings"]["context_length"]) for r in records}
    assert len(keys) == 12
    capsys.readouterr()
    cwd = os.getcwd()
    try:
        os.chdir(root / "data")
        assert _eval(root, "--data", os.path.join("a", "test.jsonl"), "--context-length", "16") == 0
    finally:
        os.chdir(cwd)
    assert capsys.readouterr().out.count("exists; skipping") == 3
    assert len(list((root / "res").glob("*.json"))) == 12

    assert main(["scaling", str(root / "res"), "--out", str(root / "rep")]) == 0
    captured = capsys.readouterr()
    assert "warning" not in captured.err
    assert "12 results in 4 corpus group(s)" in captured.out
    report = json.loads((root / "rep" / "scaling.json").read_text())
    assert not report["warnings"]
    groups = report["groups"]
    assert len(groups) == 4 and len({g["label"] for g in groups}) == 4
    assert sorted((g["settings"]["context_length"], g["n_sizes"], len(g["models"])) for g in groups) == \
        [(16, 3, 3), (16, 3, 3), (32, 3, 3), (32, 3, 3)]
    assert {g["names"][0] for g in groups} == {"test.jsonl"}
    fits = {(f["dataset"], f["family"], f["metric"]) for f in report["fits"]}
    assert len(fits) == 4 * 5 and {f[1] for f in fits} == {"llama"}
    assert len(report["models"]) == 12 and len({(m["dataset"], m["model"]) for m in report["models"]}) == 12
    assert list((root / "rep").glob("scaling_*.png"))


def test_a_group_with_one_size_is_a_warning_naming_it(study, capsys):
    """Scaling the three results of one group plus one result of another group fits the first and
    names the second in a warning (stderr and the report), never an empty table without a word."""
    root = study
    files = sorted((root / "res").glob("*.json"))
    assert files, "run after test_study_runs_without_collision_and_fits_every_group"
    records = [(f, json.loads(f.read_text())) for f in files]
    fp = records[0][1]["corpus_fingerprint"]
    chosen = [f for f, r in records if r["corpus_fingerprint"] == fp and r["settings"]["context_length"] == 16]
    lone = next(f for f, r in records if r["corpus_fingerprint"] != fp and r["settings"]["context_length"] == 16)
    capsys.readouterr()
    assert main(["scaling", *map(str, chosen), str(lone), "--out", str(root / "rep2"), "--no-figures"]) == 0
    err = capsys.readouterr().err
    assert err.count("warning:") == 1 and "1 model size" in err
    report = json.loads((root / "rep2" / "scaling.json").read_text())
    assert len(report["warnings"]) == 1 and len({f["dataset"] for f in report["fits"]}) == 1
