"""The training config: YAML/JSON loading, command-line overrides, clear errors for bad values."""

import dataclasses
import json

import pytest
import yaml

from rce_jax import cli
from rce_jax.train.config import ConfigError, TrainConfig, identity, load_config
from rce_jax.train.loop import _check_out_dir

EXAMPLE = {
    "model": {"preset": "demo-2"},
    "tokenizer": {"vocab_size": 1024},
    "data": {"train": ["python-docs@train"], "eval": ["python-docs@heldout"]},
    "optim": {"lr": 0.0005, "warmup_steps": 10, "clip_norm": 0.5},
    "loss": {"lam": 0.3},
    "eval": {"every": 25, "max_tokens": 1000},
    "steps": 100, "batch_size": 4, "context_length": 64, "seed": 3, "fsdp": True,
}


def test_yaml_and_json_give_the_same_typed_config(tmp_path):
    """The same settings from a YAML file and a JSON file load to equal configs with typed values."""
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(EXAMPLE))
    (tmp_path / "c.json").write_text(json.dumps(EXAMPLE))
    a, b = load_config(tmp_path / "c.yaml"), load_config(tmp_path / "c.json")
    assert a == b
    assert a.optim.lr == 0.0005 and isinstance(a.optim.lr, float)
    assert a.loss.lam == 0.3 and a.fsdp is True and a.data.train == ["python-docs@train"]
    assert a.model.preset == "demo-2" and a.model.hf_config is None
    assert TrainConfig.from_dict(a.to_dict()) == a  # round trip


def test_overrides_are_converted_to_the_field_types(tmp_path):
    """``key=value`` overrides reach nested fields and take the field's type (3e-4 is a float even
    though YAML 1.1 reads it as a string; lists may be comma-separated)."""
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(EXAMPLE))
    c = load_config(tmp_path / "c.yaml", ["optim.lr=3e-4", "steps=250", "fsdp=false",
                                           "data.train=python-docs@train,python-code@train",
                                           "eval.max_tokens=null", "model.preset=demo-4"])
    assert c.optim.lr == 3e-4 and isinstance(c.optim.lr, float)
    assert c.steps == 250 and c.fsdp is False and c.eval.max_tokens is None
    assert c.data.train == ["python-docs@train", "python-code@train"]
    assert c.model.preset == "demo-4"
    assert c.optim.clip_norm == 0.5  # untouched values stay
    d = TrainConfig().with_overrides(["loss.lam=0.5"])
    assert d.loss.lam == 0.5 and d.steps == TrainConfig().steps


@pytest.mark.parametrize("override, message", [
    ("optim.lr=-1", "optim.lr: must be positive"),
    ("optim.lr=fast", "optim.lr: expected a number, got 'fast'"),
    ("steps=0", "steps: must be >= 1"),
    ("steps=1.5", "steps: expected an integer"),
    ("loss.lam=1.0", "loss.lam: must lie in [0, 1)"),
    ("loss.impl=quick", "loss.impl: expected one of"),
    ("loss.head=both", "loss.head: expected one of"),
    ("dtype=float16", "dtype: expected one of"),
    ("optim.lrr=0.1", "unknown config key(s) optim.lrr"),
    ("model.preset=giant", "model.preset: unknown preset 'giant'"),
    ("model.hf_config=x.json", "model: give exactly one of 'preset' or 'hf_config'"),
    ("optim.warmup_steps=200", "optim.warmup_steps: must be smaller than steps"),
    ("eval.every=-5", "eval.every: must be >= 0"),
    ("fsdp=maybe", "fsdp: expected true or false"),
    ("optim=3", "optim: expected a mapping"),
    ("tokenizer.vocab_size=100", "tokenizer.vocab_size: must be at least 260"),
    ("context_length=1", "context_length: must be >= 2"),
    ("nonsense", "expected KEY=VALUE"),
])
def test_bad_values_raise_errors_that_name_the_key(override, message):
    """Each bad value or key raises ConfigError (a ValueError) naming the dotted key and the problem."""
    with pytest.raises(ConfigError) as err:
        TrainConfig().with_overrides([override]) if "=" in override else load_config(None, [override])
    assert message in str(err.value)
    assert isinstance(err.value, ValueError)


def test_bad_files(tmp_path):
    """A missing file, invalid YAML and a non-mapping top level are reported with the file name."""
    with pytest.raises(FileNotFoundError, match="no such config file"):
        load_config(tmp_path / "missing.yaml")
    (tmp_path / "bad.yaml").write_text("steps: [1, 2\n")
    with pytest.raises(ConfigError, match="bad.yaml: not valid YAML"):
        load_config(tmp_path / "bad.yaml")
    (tmp_path / "list.json").write_text("[1, 2]")
    with pytest.raises(ConfigError, match="top level must be a mapping"):
        load_config(tmp_path / "list.json")


def test_cli_flags_print_config_and_errors(tmp_path, capsys):
    """`rce-jax train` flags are shortcuts for overrides; --print-config prints YAML that loads back
    to the same config; a bad value exits with status 2 and a message naming the key."""
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(EXAMPLE))
    rc = cli.main(["train", "--config", str(tmp_path / "c.yaml"),  # no --out needed to print
                   "--lr", "0.002", "--steps", "40", "--set", "loss.lam=0.1", "--print-config"])
    assert rc == 0
    printed = yaml.safe_load(capsys.readouterr().out)
    c = TrainConfig.from_dict(printed)
    assert c.optim.lr == 0.002 and c.steps == 40 and c.loss.lam == 0.1 and c.context_length == 64
    rc = cli.main(["train", "--out", str(tmp_path / "run"), "--set", "optim.b1=1.5"])
    assert rc == 2
    assert "optim: b1, b2 must lie in [0, 1)" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()  # refused before anything was written
    assert cli.main(["train", "--steps", "3"]) == 2  # training needs a run folder
    assert "needs --out" in capsys.readouterr().err


def test_rerun_with_another_config_is_refused(tmp_path):
    """A folder holding a run refuses a config that would change its numbers (naming the keys),
    accepts changed checkpoint settings, and --restart discards the old run."""
    a = TrainConfig.from_dict(EXAMPLE)
    _check_out_dir(tmp_path, a, restart=False, writer=True)
    _check_out_dir(tmp_path, a.with_overrides(["save_every=7", "keep=5"]), restart=False, writer=True)
    with pytest.raises(ConfigError, match=r"differs in: optim.lr, steps"):
        _check_out_dir(tmp_path, a.with_overrides(["optim.lr=0.1", "steps=120"]), restart=False, writer=True)
    # On a multi-host run, the processes that do not write accept --restart too (before, they
    # compared the old config and refused it).
    _check_out_dir(tmp_path, a.with_overrides(["steps=120"]), restart=True, writer=False)
    _check_out_dir(tmp_path, a.with_overrides(["steps=120"]), restart=True, writer=True)
    assert json.loads((tmp_path / "config.json").read_text())["steps"] == 120
    assert "save_every" not in identity(a)


@pytest.mark.parametrize("backend, tokens, head, impl", [
    ("cpu", 512, "materialised", "naive"),        # small logits on CPU: one fused XLA pass
    ("cpu", 1 << 20, "fused", "xla"),             # 2^20 x 2048 x 4 B = 8 GiB > the limit
    ("gpu", 512, "materialised", "auto"),         # an accelerator: the backend's kernel (per
    ("tpu", 512, "materialised", "auto"),         # shard of rows on a mesh; resolve_loss takes no mesh)
])
def test_auto_loss_path_follows_backend_and_size(backend, tokens, head, impl):
    """``auto`` picks the loss path from the backend and the size of the logits block (the
    table above, docs/decisions.md#training); an explicit choice is kept."""
    from rce_jax.train.config import LossSection
    from rce_jax.train.step import resolve_loss

    got = resolve_loss(LossSection(), tokens_per_step=tokens, vocab_size=2048, backend=backend)
    assert got == (head, impl)
    # an explicit choice is kept whatever the machine
    assert resolve_loss(LossSection(impl="pallas", head="materialised"), tokens_per_step=tokens,
                        vocab_size=2048, backend=backend) == ("materialised", "pallas")


def test_ladder_folder_accepts_what_a_run_accepts_and_refuses_the_rest(tmp_path):
    """A ladder folder may be rerun with the changes a single run allows (checkpointing and cache
    folders, config.RESUMABLE_CHANGES) and refuses a recipe that changes the numbers."""
    from rce_jax.train.demo import QUICK
    from rce_jax.train.ladder import _check_spec

    _check_spec(tmp_path, QUICK)
    same = QUICK.recipe.with_overrides(["save_every=3", "keep=9", "data.cache_dir=/tmp/elsewhere",
                                        "tokenizer.cache_dir=/tmp/elsewhere"])
    _check_spec(tmp_path, dataclasses.replace(QUICK, recipe=same))
    with pytest.raises(ConfigError, match=r"holds another ladder \(differs in: recipe.optim.lr\)"):
        _check_spec(tmp_path, dataclasses.replace(QUICK, recipe=QUICK.recipe.with_overrides(["optim.lr=0.5"])))
