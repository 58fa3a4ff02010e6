"""rce_jax.config, the one loader: every supported field type from YAML, JSON and overrides;
unknown keys, bad types, missing fields and a dataclass's own checks as ConfigError naming the
dotted key; dump_yaml loads back to the same config."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import pytest
import yaml
from np_reference import fresh_rng

from rce_jax.config import REQUIRED, ConfigError, dump_yaml, from_dict, load, require, to_dict


@dataclasses.dataclass(frozen=True)
class Leaf:
    n: int = 1
    tag: str | None = None

    def __post_init__(self):
        require(self.n >= 0, "n", f"must be >= 0, got {self.n}")


@dataclasses.dataclass(frozen=True)
class Root:
    name: str
    rate: float = 0.5
    on: bool = False
    limit: int | None = None
    words: list[str] = dataclasses.field(default_factory=list)
    ranks: tuple[int, ...] = ()
    pair: tuple[str, int] = ("a", 0)
    leaf: Leaf = dataclasses.field(default_factory=Leaf)
    leaves: dict[str, Leaf] = dataclasses.field(default_factory=dict)
    extra: Any = None


FULL = {"name": "x", "rate": 0.25, "on": True, "limit": 7, "words": ["p", "q"], "ranks": [2, 4],
        "pair": ["b", 3], "leaf": {"n": 5, "tag": "t"}, "leaves": {"u": {"n": 2}, "v": {}},
        "extra": {"free": [1, "form"]}}


def expected_full() -> Root:
    return Root("x", 0.25, True, 7, ["p", "q"], (2, 4), ("b", 3), Leaf(5, "t"),
                {"u": Leaf(2), "v": Leaf()}, {"free": [1, "form"]})


def test_yaml_and_json_files_give_typed_values(tmp_path):
    """The same mapping as YAML and as JSON loads to the expected instance, field by field typed
    (lists stay lists, sequences declared as tuples become tuples, dict values become sections)."""
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(FULL))
    (tmp_path / "c.json").write_text(json.dumps(FULL))
    a, b = load(Root, tmp_path / "c.yaml"), load(Root, tmp_path / "c.json")
    assert a == b == expected_full()
    assert isinstance(a.ranks, tuple) and isinstance(a.words, list) and isinstance(a.rate, float)


def test_overrides_convert_to_the_declared_type():
    """``KEY=VALUE`` reaches nested fields and dict entries; values take the field's type (3e-4
    is a float though YAML 1.1 reads it as a string; 2,4 is a tuple of ints; null clears an
    optional field; a dict entry that did not exist is created with its defaults)."""
    c = load(Root, None, ["name=y", "rate=3e-4", "on=yes", "limit=null", "words=a,b", "ranks=2,4",
                          "pair=[c, 9]", "leaf.n=3", "leaves.w.tag=z", "extra.k=1"])
    assert c == Root("y", 3e-4, True, None, ["a", "b"], (2, 4), ("c", 9), Leaf(3), {"w": Leaf(tag="z")}, {"k": 1})
    assert isinstance(c.rate, float) and c.ranks == (2, 4)
    assert load(Root, None, ["name=one", "limit=4.0"]).limit == 4  # a whole float is an integer
    with pytest.raises(ConfigError, match="name: expected a string, got 1"):  # YAML read 1 as a number
        load(Root, None, ["name=1"])


@pytest.mark.parametrize("d, message", [
    ({"name": "x", "rate": "fast"}, "rate: expected a number, got 'fast'"),
    ({"name": "x", "on": "maybe"}, "on: expected true or false, got 'maybe'"),
    ({"name": "x", "limit": 1.5}, "limit: expected an integer, got 1.5"),
    ({"name": "x", "limit": True}, "limit: expected an integer, got True"),
    ({"name": "x", "ranks": [1, "two"]}, "ranks[1]: expected an integer, got 'two'"),
    ({"name": "x", "pair": ["a"]}, "pair: expected 2 values, got ['a']"),
    ({"name": "x", "words": {"a": 1}}, "words: expected a list, got {'a': 1}"),
    ({"name": "x", "words": 3}, "words[0]: expected a string, got 3"),
    ({"name": "x", "leaf": 3}, "leaf: expected a mapping (section), got 3"),
    ({"name": "x", "leaf": {"n": "many"}}, "leaf.n: expected an integer, got 'many'"),
    ({"name": "x", "leaves": {"u": {"n": -1}}}, "leaves.u.n: must be >= 0, got -1"),
    ({"name": "x", "leaf": {"m": 1}}, "unknown config key(s) leaf.m (known in this section: n, tag)"),
    ({"name": "x", "leaves": {"u": {"size": 1}}}, "unknown config key(s) leaves.u.size"),
    ({"name": "x", "nme": "y"}, "unknown config key(s) nme"),
    ({"rate": 1.0}, f"name: {REQUIRED}"),
    ({"name": None}, "name: expected str, got null"),
])
def test_bad_values_name_the_dotted_key(d, message):
    """Each bad value, unknown key, missing field and failed own check is a ConfigError (a
    ValueError) naming the dotted key, what was expected and what was given."""
    with pytest.raises(ConfigError) as err:
        from_dict(Root, d)
    assert message in str(err.value)
    assert isinstance(err.value, ValueError)


def test_bad_overrides_and_files(tmp_path):
    """An override without '=' or with an empty key, a value under a non-section, a missing file,
    invalid YAML and a non-mapping top level are refused with the reason."""
    for item, message in (("nonsense", "expected KEY=VALUE"), ("=3", "empty key"), ("leaf..n=1", "empty key"),
                          ("name.sub=1", "name.sub: 'name' is not a section")):
        with pytest.raises(ConfigError, match=message):
            load(Root, None, ["name=x", item])
    with pytest.raises(FileNotFoundError, match="no such config file"):
        load(Root, tmp_path / "none.yaml")
    (tmp_path / "bad.yaml").write_text("name: [x\n")
    with pytest.raises(ConfigError, match="bad.yaml: not valid YAML"):
        load(Root, tmp_path / "bad.yaml")
    (tmp_path / "list.json").write_text("[1]")
    with pytest.raises(ConfigError, match="top level must be a mapping, got list"):
        load(Root, tmp_path / "list.json")


def test_dump_yaml_round_trips_fresh_values():
    """dump_yaml of configs with fresh random values loads back (from_dict) to an equal config;
    to_dict writes tuples as lists (YAML and JSON have no tuples)."""
    rng = fresh_rng()
    for _ in range(20):
        c = Root(name=str(rng.integers(1 << 30)), rate=float(rng.normal()), on=bool(rng.integers(2)),
                 limit=None if rng.integers(2) else int(rng.integers(-5, 5)),
                 words=[str(w) for w in rng.integers(0, 9, int(rng.integers(0, 4)))],
                 ranks=tuple(int(r) for r in rng.integers(1, 99, int(rng.integers(0, 4)))),
                 pair=(str(rng.integers(9)), int(rng.integers(9))),
                 leaf=Leaf(int(rng.integers(0, 9))), leaves={f"k{i}": Leaf(i) for i in range(int(rng.integers(3)))})
        assert from_dict(Root, yaml.safe_load(dump_yaml(c))) == c
        assert from_dict(Root, json.loads(json.dumps(to_dict(c)))) == c
    assert to_dict(Root("x", ranks=(1, 2)))["ranks"] == [1, 2]


def test_error_keys_compose_under_sections():
    """ConfigError.under puts a section's key in front of the error's key (or of its message)."""
    e = ConfigError("must be positive", "batch_size").under("settings")
    assert (e.key, e.message, str(e)) == ("settings.batch_size", "must be positive", "settings.batch_size: must be positive")
    assert str(ConfigError("two of them").under("corpora.c")) == "corpora.c: two of them"
