"""The one configuration loader: typed frozen dataclasses <-> dicts, YAML/JSON files, overrides.

    config = load(TrainConfig, "run.yaml", overrides=["optim.lr=3e-4", "steps=500"])
    config = from_dict(EvalJob, {"models": ["a=/m/a"], "settings": {"context_length": 1024}})
    text = dump_yaml(config)      # from_dict(type(config), yaml.safe_load(text)) == config

Every value is converted to its field's declared type (``int``, ``float``, ``bool``, ``str``,
``X | None``, ``list[X]``, ``tuple[X, ...]``, ``dict[str, X]``, ``Any``, a nested dataclass);
a value or key that is not acceptable raises ``ConfigError`` (a ValueError) that names its
dotted key (``optim.lr``), what was expected and what was given. Unknown keys are errors (a
misspelt key would otherwise be silently ignored), and so is a missing field without a default.
A dataclass's own ``__post_init__`` checks may raise ``ConfigError(message, key)``; the loader
puts the section's dotted prefix in front of that key. Override values (``KEY=VALUE``) are
parsed as YAML and then converted, so ``optim.lr=3e-4`` is a float although YAML 1.1 reads
``3e-4`` as a string, and a list or tuple may be written comma-separated (``ranks=2,4``) or,
with one element, as that element (``ranks=3``).
Why this is hand-written rather than a library: docs/config.md.
"""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from pathlib import Path
from typing import Any

import yaml


REQUIRED = "required, no default"  # the message of a field that is missing


class ConfigError(ValueError):
    """A configuration value or key that is not acceptable. ``key``: the dotted key (or None),
    ``message``: the problem; ``str()`` is ``"key: message"``."""

    def __init__(self, message: str, key: str | None = None):
        self.message, self.key = message, key
        super().__init__(f"{key}: {message}" if key else message)

    def under(self, prefix: str) -> ConfigError:
        """The same error with ``prefix`` (a section's dotted key) in front of its key."""
        if not prefix:
            return self
        return ConfigError(self.message, f"{prefix}.{self.key}" if self.key else prefix)


def require(ok: bool, key: str, message: str) -> None:
    """Raise ``ConfigError(message, key)`` unless ``ok``."""
    if not ok:
        raise ConfigError(message, key)


# ---- dicts <-> dataclasses ----------------------------------------------------------------
def from_dict(cls, d: dict, prefix: str = ""):
    """An instance of dataclass ``cls`` from a nested dict (``prefix``: the dotted key of ``d``)."""
    where = prefix.rstrip(".")
    if not isinstance(d, dict):
        raise ConfigError(f"expected a mapping, got {d!r}", where or None)
    hints = typing.get_type_hints(cls)
    fields = [f for f in dataclasses.fields(cls) if f.init]
    names = [f.name for f in fields]
    unknown = sorted(set(d) - set(names))
    if unknown:
        raise ConfigError(f"unknown config key(s) {', '.join(prefix + str(k) for k in unknown)} "
                          f"(known in this section: {', '.join(names)})")
    missing = [f.name for f in fields if f.name not in d and f.default is dataclasses.MISSING
               and f.default_factory is dataclasses.MISSING]
    if missing:
        raise ConfigError(REQUIRED, prefix + missing[0])
    kwargs = {name: convert(d[name], hints[name], prefix + name) for name in names if name in d}
    try:
        return cls(**kwargs)
    except ConfigError as e:
        raise e.under(where) from None


def to_dict(obj) -> Any:
    """A dataclass as nested dicts, lists and scalars (tuples become lists), for YAML or JSON."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_dict(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, (list, tuple)):
        return [to_dict(v) for v in obj]
    if isinstance(obj, dict):
        return {k: to_dict(v) for k, v in obj.items()}
    return obj


def _type_name(tp) -> str:
    return getattr(tp, "__name__", str(tp))


def _sequence(value, key: str) -> list:
    if isinstance(value, str):  # a comma-separated override: a,b,c
        value = [v.strip() for v in value.split(",") if v.strip()]
    elif isinstance(value, (int, float)):  # one number: a sequence of one (ranks=3)
        value = [value]
    if not isinstance(value, (list, tuple)):
        raise ConfigError(f"expected a list, got {value!r}", key)
    return list(value)


def convert(value, tp, key: str):
    """``value`` as type ``tp`` (the types of the module docstring); ``key`` names it in errors."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return convert(value, arg, key)
            except ConfigError as e:
                errors.append(e)
        raise errors[0] if errors else ConfigError("unexpected null", key)
    if tp is Any:
        return value
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise ConfigError(f"expected a mapping (section), got {value!r}", key)
        return from_dict(tp, value, key + ".")
    if value is None:
        raise ConfigError(f"expected {_type_name(origin or tp)}, got null", key)
    if tp is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false", "yes", "no", "on", "off"):
            return value.lower() in ("true", "yes", "on")
        raise ConfigError(f"expected true or false, got {value!r}", key)
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, (float, str)) and not isinstance(value, bool):
            try:
                f = float(value)
            except ValueError:
                f = None
            if f is not None and f.is_integer():
                return int(f)
        raise ConfigError(f"expected an integer, got {value!r}", key)
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                pass
        raise ConfigError(f"expected a number, got {value!r}", key)
    if tp is str:
        if isinstance(value, str):
            return value
        raise ConfigError(f"expected a string, got {value!r}", key)
    if tp is list or origin is list:
        items = _sequence(value, key)
        return [convert(v, args[0], f"{key}[{i}]") if args else v for i, v in enumerate(items)]
    if tp is tuple or origin is tuple:
        items = _sequence(value, key)
        if args and not (len(args) == 2 and args[1] is Ellipsis):  # tuple[X, Y]: that many
            if len(items) != len(args):
                raise ConfigError(f"expected {len(args)} values, got {value!r}", key)
            return tuple(convert(v, a, f"{key}[{i}]") for i, (v, a) in enumerate(zip(items, args)))
        return tuple(convert(v, args[0], f"{key}[{i}]") if args else v for i, v in enumerate(items))
    if tp is dict or origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"expected a mapping, got {value!r}", key)
        if not args:
            return dict(value)
        return {convert(k, args[0], f"{key}"): convert(v, args[1], f"{key}.{k}") for k, v in value.items()}
    raise ConfigError(f"unsupported field type {tp!r}", key)


# ---- files and overrides ------------------------------------------------------------------
def read_file(path) -> dict:
    """The top-level mapping of a YAML or JSON file (JSON by the ``.json`` suffix)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such config file")
    text = path.read_text(encoding="utf-8")
    is_json = path.suffix == ".json"
    try:
        d = json.loads(text) if is_json else yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError) as e:
        raise ConfigError(f"{path}: not valid {'JSON' if is_json else 'YAML'} ({e})") from e
    if d is None:
        return {}
    if not isinstance(d, dict):
        raise ConfigError(f"{path}: the top level must be a mapping, got {type(d).__name__}")
    return d


def apply_override(d: dict, item: str) -> str:
    """Set ``d[a][b] = value`` for ``item = "a.b=value"`` (value parsed as YAML); returns the key."""
    if "=" not in item:
        raise ConfigError(f"override {item!r}: expected KEY=VALUE, e.g. optim.lr=3e-4")
    key, raw = item.split("=", 1)
    key = key.strip()
    if not key or any(not p for p in key.split(".")):
        raise ConfigError(f"override {item!r}: empty key")
    try:
        value = yaml.safe_load(raw) if raw.strip() else None
    except yaml.YAMLError:
        value = raw
    set_key(d, key, value)
    return key


def set_key(d: dict, key: str, value) -> None:
    """``d[a][b] = value`` for the dotted ``key = "a.b"``, making the sections on the way."""
    node = d
    parts = key.split(".")
    for p in parts[:-1]:
        child = node.get(p)
        if child is None:
            child = node[p] = {}
        if not isinstance(child, dict):
            raise ConfigError(f"{p!r} is not a section", key)
        node = child
    node[parts[-1]] = value


def load(cls, path=None, overrides=()):
    """A ``cls`` from a YAML or JSON file (or from the defaults), with ``KEY=VALUE`` overrides."""
    d = {} if path is None else read_file(path)
    for item in overrides:
        apply_override(d, item)
    return from_dict(cls, d)


def dump_yaml(obj) -> str:
    """``obj`` (a dataclass) as YAML, in field order; loading it back gives an equal ``obj``."""
    return yaml.safe_dump(to_dict(obj), sort_keys=False)
