"""The result record (rce_jax/results.py): one schema written and read in one place, version 1
files still read, file names keyed by every number-changing setting, and scaling's grouping."""

import dataclasses
import json

import pytest
from np_reference import fresh_rng

from result_helpers import make_record as _record

from rce_jax.evaluate import EvalConfig, result_path
from rce_jax.results import NUMBER_SETTINGS, VERSION, ResultFileError, read_result, write_result
from rce_jax.report import scaling_report

def test_record_round_trips_and_is_its_json(tmp_path):
    """write_result then read_result gives an equal record; the mapping view is exactly the JSON
    object (schema and version first); the statistics it carries decompose to its own numbers."""
    r = _record(fresh_rng())
    write_result(tmp_path / "r.json", r)
    back = read_result(tmp_path / "r.json")
    assert back == r and dict(back) == json.loads((tmp_path / "r.json").read_text())
    assert list(back)[:2] == ["schema", "version"] and back["version"] == VERSION
    dec = back.rank_stats_object().decompose()
    for key in ("ce", "ee", "sa", "conf", "n_tokens"):
        assert getattr(dec, key) == back[key]
    assert back.intervals is None and back.producer == "eval"


def test_version_1_files_still_read(tmp_path):
    """A record as version 1 wrote it (dataset = the spec, corpus fingerprint inside settings, no
    tokenizer fingerprint or tokenization) reads: tokenization plain, fingerprint lifted, the rest
    as written; unknown versions and other JSON are refused by name."""
    r = _record(fresh_rng())
    v1 = {k: v for k, v in r.to_dict().items()
          if k not in ("dataset_spec", "corpus_fingerprint", "tokenizer_fingerprint", "producer", "step",
                       "intervals", "sum_logprob", "num_words", "num_bytes", "token_perplexity")}
    v1 |= {"version": 1, "dataset": "/data/d.jsonl", "sum_logprob": r.sum_logprob,
           "num_words": r.num_words, "num_bytes": r.num_bytes, "token_perplexity": r.token_perplexity}
    v1["settings"] = {k: v for k, v in r.settings.items() if k not in ("tokenization", "max_tokens")}
    v1["settings"] |= {"corpus_fingerprint": r.corpus_fingerprint, "max_tokens": None}
    (tmp_path / "v1.json").write_text(json.dumps(v1))
    old = read_result(tmp_path / "v1.json")
    assert old.settings["tokenization"] == "plain" and old.corpus_fingerprint == r.corpus_fingerprint
    assert old.tokenizer_fingerprint is None and old.dataset_spec == "/data/d.jsonl"
    assert (old.ce, old.rank_stats) == (r.ce, r.rank_stats)
    (tmp_path / "v9.json").write_text(json.dumps({**v1, "version": 9}))
    with pytest.raises(ResultFileError, match="version 9"):
        read_result(tmp_path / "v9.json")
    (tmp_path / "other.json").write_text(json.dumps({"ce": 1.0}))
    with pytest.raises(ResultFileError, match="not an `rce-jax eval` result"):
        read_result(tmp_path / "other.json")


def test_auto_dtype_names_the_dtype_that_runs(tmp_path):
    """--dtype auto is resolved from the checkpoint (config.json's stored dtype, as transformers
    reads it) before the file is named: the name equals that of the explicit dtype."""
    model = tmp_path / "m"
    model.mkdir()
    (model / "config.json").write_text(json.dumps({"model_type": "llama", "torch_dtype": "bfloat16"}))
    name = lambda dtype: result_path(tmp_path, "m", "test", EvalConfig(context_length=64, dtype=dtype),  # noqa: E731
                                     model_path=str(model), data_spec="python-docs")
    assert name("auto") == name("bfloat16") != name("float32")


@pytest.mark.parametrize("start, change", [
    ({}, {"context_length": 32}), ({}, {"add_special_tokens": True}), ({}, {"rank_vocab": "tokenizer"}),
    ({}, {"dtype": "bfloat16"}), ({"dtype": "bfloat16"}, {"upcast_logits": True}), ({}, {"max_tokens": 100})])
def test_every_number_changing_setting_changes_the_file_name(start, change, tmp_path):
    """Two evaluations that differ in one number-changing setting never share a file; the same
    corpus spelled relative or absolute does; another corpus of the same base name does not."""
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    base = EvalConfig(context_length=64, **{"dtype": "float32", **start})
    other = dataclasses.replace(base, **change)
    assert set(base.number_settings()) == set(NUMBER_SETTINGS)
    name = lambda cfg, spec: result_path(tmp_path, "m", "test", cfg, model_path="/runs/m", data_spec=spec)  # noqa: E731
    a = str(tmp_path / "a" / "test.jsonl")
    assert name(base, a) != name(other, a)
    assert name(base, a) != name(base, str(tmp_path / "b" / "test.jsonl"))
    import os

    cwd = os.getcwd()
    try:
        os.chdir(tmp_path / "b")
        assert name(base, os.path.join("..", "a", "test.jsonl")) == name(base, a)
    finally:
        os.chdir(cwd)


def test_scaling_groups_by_fingerprint_and_settings_not_by_name():
    """Results on one corpus under three names form one group (its label lists the names); the
    same corpus under the same names at another context length is another group, both labels
    then saying the context length; a group with a single size is a warning naming it and its
    model, not a silent omission."""
    rng = fresh_rng()
    sizes_names = ((1000, "a"), (2000, "b"), (4000, "c"))
    recs = [_record(rng, n_params=n, model=f"m{n}", dataset=name) for n, name in sizes_names]
    recs += [_record(rng, n_params=n, model=f"m{n}", dataset=name, settings={"context_length": 128})
             for n, name in sizes_names]
    recs.append(_record(rng, n_params=500, model="lone", dataset="other", fingerprint="e" * 64))
    report = scaling_report(recs)
    by_label = {g["label"]: g for g in report.groups}
    assert sorted(by_label) == ["a|b|c [context_length=128]", "a|b|c [context_length=64]", "other"]
    assert by_label["a|b|c [context_length=64]"]["models"] == ["m1000", "m2000", "m4000"]
    assert by_label["a|b|c [context_length=64]"]["names"] == ["a", "b", "c"]
    assert {r["dataset"] for r in report.rows} == {"a|b|c [context_length=128]", "a|b|c [context_length=64]"}
    assert len(report.warnings) == 1 and "'other'" in report.warnings[0] and "lone" in report.warnings[0]
    summary = report.grouping_summary()
    assert summary.count("group ") == 3 and "warning: 'other'" in summary
