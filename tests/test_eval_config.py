"""`rce-jax eval --config / --set / --print-config`: the EvalJob schema, the precedence
defaults < file < --set < explicit flags, errors by flag for flags and by key for the file, and
an evaluation from a config file giving the result the same flags give."""

import json
from pathlib import Path

import pytest
import yaml
from eval_fixtures import make_model_dir, write_corpus

from rce_jax.cli import build_parser, main
from rce_jax.commands import eval as eval_command
from rce_jax.config import from_dict
from rce_jax.evaluate import EvalConfig
from rce_jax.evaluate.job import EvalJob

RUNTIME_FLAGS = {"--config", "--set", "--print-config", "--no-progress", "--distributed", "-h"}


def job_keys(cls, prefix=""):
    import dataclasses

    out = set()
    for f in dataclasses.fields(cls):
        if f.name == "settings":
            out |= job_keys(EvalConfig, "settings.")
        else:
            out.add(prefix + f.name)
    return out


def test_every_flag_is_one_key_and_every_key_has_a_flag():
    """Each flag of `rce-jax eval` but the run-time ones stores into exactly one EvalJob key (its
    dest), and every EvalJob / EvalConfig field is reachable by a flag."""
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command").choices["eval"]
    dests = {a.option_strings[0]: a.dest for a in sub._actions if a.option_strings and
             not set(a.option_strings) & RUNTIME_FLAGS}
    assert set(dests.values()) == job_keys(EvalJob)
    assert len(set(dests.values())) == len(dests)
    assert eval_command.FLAGS == {key: flag for flag, key in dests.items()}


def printed(capsys, *args):
    assert main(["eval", *args, "--print-config"]) == 0
    return yaml.safe_load(capsys.readouterr().out)


def test_precedence_file_then_set_then_flags(tmp_path, capsys):
    """A key in the file is overridden by --set, and --set by an explicit flag; keys given in
    none keep EvalConfig's defaults; a repeated flag (--model) replaces the file's list."""
    (tmp_path / "job.yaml").write_text(yaml.safe_dump({
        "models": ["a=/m/a", "b=/m/b"], "data": ["python-docs@all"], "out": str(tmp_path / "o"),
        "settings": {"context_length": 32, "batch_size": 4, "bootstrap": 0, "profile_ranks": [2, 4]}}))
    f = ["--config", str(tmp_path / "job.yaml")]
    d = printed(capsys, *f)
    assert (d["settings"]["batch_size"], d["settings"]["bootstrap"], d["models"]) == (4, 0, ["a=/m/a", "b=/m/b"])
    assert d["settings"]["profile_ranks"] == [2, 4]
    assert d["settings"]["checkpoint_every"] == EvalConfig(context_length=1).checkpoint_every  # a default
    d = printed(capsys, *f, "--set", "settings.batch_size=5", "--set", "settings.profile_ranks=3")
    assert (d["settings"]["batch_size"], d["settings"]["profile_ranks"]) == (5, [3])
    d = printed(capsys, *f, "--set", "settings.batch_size=5", "--batch-size", "6", "--model", "c=/m/c",
                "--no-fused", "--profile-ranks", "7,8")
    assert (d["settings"]["batch_size"], d["models"], d["settings"]["fused"]) == (6, ["c=/m/c"], False)
    assert d["settings"]["profile_ranks"] == [7, 8] and d["settings"]["context_length"] == 32


def test_print_config_round_trip_and_flags_alone(tmp_path, capsys):
    """The printed YAML, loaded back, is the job the flags describe (flags alone, no file), and
    given back as --config it prints the same YAML again; nothing is written or read."""
    out = tmp_path / "o"
    args = ["--model", "/m/a", "--data", "python-code@all", "--out", str(out), "--context-length", "16",
            "--batch-size", "3", "--dtype", "float32", "--rank-vocab", "tokenizer", "--upcast-logits",
            "--bootstrap", "0", "--add-special-tokens", "--save-stats", "--max-tokens", "100"]
    assert main(["eval", *args, "--print-config"]) == 0
    text = capsys.readouterr().out
    job = from_dict(EvalJob, yaml.safe_load(text))
    assert job == EvalJob(models=("/m/a",), data=("python-code@all",), out=str(out), save_stats=True,
                          settings=EvalConfig(context_length=16, batch_size=3, dtype="float32",
                                              rank_vocab="tokenizer", upcast_logits=True, bootstrap=0,
                                              add_special_tokens=True, max_tokens=100))
    (tmp_path / "printed.yaml").write_text(text)
    assert main(["eval", "--config", str(tmp_path / "printed.yaml"), "--print-config"]) == 0
    assert capsys.readouterr().out == text
    assert not out.exists()


@pytest.mark.parametrize("file, extra, message", [
    ({"settings": {"batch_size": 0}}, [], "settings.batch_size: must be positive, got 0"),
    ({}, ["--set", "settings.checkpoint_every=0"], "settings.checkpoint_every: must be positive, got 0"),
    ({}, ["--checkpoint-every", "0"], "--checkpoint-every must be positive, got 0"),
    ({}, ["--bootstrap", "1"], "--bootstrap takes 0 (none) or at least 2 replicates, got 1"),
    ({"settings": {"bootstrap_level": 1.5}}, [], "settings.bootstrap_level: must lie in (0, 1), got 1.5"),
    ({"settings": {"batch": 4}}, [], "unknown config key(s) settings.batch"),
    ({"setting": {}}, [], "unknown config key(s) setting"),
    ({"settings": {"batch_size": "many"}}, [], "settings.batch_size: expected an integer, got 'many'"),
    ({"settings": {"context_length": None}}, ["--context-length", "0"], "--context-length must be positive, got 0"),
    ({"models": []}, [], "give --model (or `models` in --config)"),
])
def test_errors_name_the_flag_or_the_key(tmp_path, capsys, file, extra, message):
    """A bad value given by a flag is reported by the flag; one from the file or --set by its
    dotted key; unknown keys and a missing required value are refused; exit status 2."""
    base = {"models": ["/m/a"], "data": ["python-docs@all"], "out": str(tmp_path / "o"),
            "settings": {"context_length": 16}}
    for key, value in file.items():
        base[key] = {**base[key], **value} if isinstance(value, dict) and key in base else value
    (tmp_path / "job.yaml").write_text(yaml.safe_dump(base))
    assert main(["eval", "--config", str(tmp_path / "job.yaml"), *extra, "--print-config"]) == 2
    assert message in capsys.readouterr().err


def test_missing_context_length_names_its_flag_and_key(capsys):
    assert main(["eval", "--model", "/m", "--data", "python-docs@all", "--out", "/nowhere", "--print-config"]) == 2
    assert "give --context-length (or `settings.context_length` in --config)" in capsys.readouterr().err


def test_eval_from_a_config_file_equals_eval_from_flags(tmp_path):
    """The tiny model on the tiny corpus, once from flags and once from a --config file holding
    the same settings (with --set and a flag on top), writes results with equal numbers, equal
    settings and the same file name (the results are keyed by every number-changing setting)."""
    make_model_dir(tmp_path / "tiny-llama", seed=0)
    write_corpus(tmp_path / "corpus.jsonl", n_docs=4, seed=1, max_words=30)
    common = ["--no-progress"]
    assert main(["eval", "--model", str(tmp_path / "tiny-llama"), "--data", str(tmp_path / "corpus.jsonl"),
                 "--out", str(tmp_path / "flags"), "--context-length", "16", "--batch-size", "2",
                 "--bootstrap", "0", "--cache-dir", str(tmp_path / "cache"), *common]) == 0
    (tmp_path / "job.yaml").write_text(yaml.safe_dump({
        "models": [str(tmp_path / "tiny-llama")], "data": [str(tmp_path / "corpus.jsonl")],
        "out": str(tmp_path / "file"), "cache_dir": str(tmp_path / "cache"),
        "settings": {"context_length": 16, "batch_size": 8, "bootstrap": 0}}))
    assert main(["eval", "--config", str(tmp_path / "job.yaml"), "--set", "settings.batch_size=4",
                 "--batch-size", "2", *common]) == 0
    a, b = (sorted(Path(tmp_path / d).glob("*.json")) for d in ("flags", "file"))
    assert len(a) == len(b) == 1 and a[0].name == b[0].name
    ra, rb = (json.loads(p[0].read_text()) for p in (a, b))
    for key in ("n_tokens", "ce", "ee", "sa", "conf", "word_perplexity", "bits_per_byte"):
        assert ra[key] == rb[key], key
    assert ra["settings"] == rb["settings"] and ra["settings"]["batch_size"] == 2


def test_defaults_stated_in_the_help_are_the_dataclass_defaults():
    """The flags carry no argparse defaults any more (the dataclasses hold them); each default a
    flag's help states, "(default N)", is the default of its EvalConfig field."""
    import re

    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command").choices["eval"]
    stated = {a.dest: re.search(r"\(default ([^;)]+)", a.help or "") for a in sub._actions}
    stated = {k: m.group(1).split()[0].rstrip(":") for k, m in stated.items() if m and k.startswith("settings.")}
    assert set(stated) == {"settings.batch_size", "settings.dtype", "settings.bootstrap", "settings.bootstrap_level"}
    defaults = EvalConfig(context_length=1)
    for key, text in stated.items():
        assert str(getattr(defaults, key.removeprefix("settings."))) == text, key
