"""The paper's model/corpus table (``models.yaml`` beside this file): reading it, finding what
is present locally, and planning the evaluations of ``rce_jax.paper.study`` (no JAX
computation here: this is all a dry run needs).

The file is read by the one config loader (``rce_jax.config``) into ``TableFile``; a bad entry
is reported by the file, its dotted key and the problem (``families.gpt2.architecture: ...``).
A model is found, offline, as a folder under the models folder named like its repo id
(``ORG/NAME``, ``NAME`` or ``ORG--NAME``, aliases too), else in the local Hugging Face cache;
it is run only if the folder has config.json, weights and tokenizer files, names the table's
architecture and has at least the context length in positions. A corpus is available if it is
embedded, an existing local path, a TFDS dataset whose files are prepared, or a Hugging Face
dataset (``hf:``, ``wikitext``) found offline: a save_to_disk or data folder, or an entry of the
local datasets or hub cache.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import os
from pathlib import Path

from rce_jax.config import ConfigError, from_dict, read_file, require
from rce_jax.data import parse_spec
from rce_jax.models import FAMILIES, load_config
from rce_jax.models.checkpoint import BIN_INDEX, BIN_SINGLE, SAFE_INDEX, SAFE_SINGLE
from rce_jax.models.loading import TOKENIZER_FILES
from rce_jax.report import N_KEYS

DEFAULT_CONFIG = Path(__file__).with_name("models.yaml")
WEIGHT_FILES = (SAFE_SINGLE, SAFE_INDEX, BIN_SINGLE, BIN_INDEX)


# ---- the file's schema --------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class Defaults:
    """The study's evaluation settings (``rce_jax.evaluate.EvalConfig`` fields) and its N."""

    context_length: int
    batch_size: int
    dtype: str
    max_tokens: int | None
    n_key: str  # which parameter count is N in the fits (rce_jax.report.N_KEYS)

    def __post_init__(self):
        require(self.n_key in N_KEYS, "n_key", f"must be one of {sorted(N_KEYS)}, got {self.n_key!r}")


@dataclasses.dataclass(frozen=True)
class ModelSpec:
    repo: str  # Hugging Face repo id
    aliases: tuple[str, ...] = ()  # other ids (or folder names) of the same checkpoint


@dataclasses.dataclass(frozen=True)
class FamilySpec:
    architecture: str  # the model code its checkpoints' config.json must name
    models: tuple[ModelSpec, ...]

    def __post_init__(self):
        require(self.architecture in FAMILIES, "architecture",
                f"must be one of {FAMILIES}, got {self.architecture!r}")
        require(len(self.models) > 0, "models", "needs a non-empty list of {repo: ID, aliases: [ID, ...]}")


@dataclasses.dataclass(frozen=True)
class CorpusEntry:
    key: str = ""  # the corpus's key in the table (set from the mapping; not written in the file)
    spec: str | None = None
    spec_env: str | None = None  # environment variable holding the spec, when `spec` is not set
    text_field: str = "text"
    default: bool = False
    fallback: str | None = None

    def __post_init__(self):
        require((self.spec is None) != (self.spec_env is None), None, "needs exactly one of spec, spec_env")


@dataclasses.dataclass(frozen=True)
class TableFile:
    """``models.yaml``: ``defaults``, ``families: {key: FamilySpec}``, ``corpora: {key: CorpusEntry}``."""

    defaults: Defaults
    families: dict[str, FamilySpec]
    corpora: dict[str, CorpusEntry]


@dataclasses.dataclass(frozen=True)
class ModelEntry:
    family: str  # the YAML's family key (the paper's family), e.g. "llama-2"
    repo: str  # Hugging Face repo id
    architecture: str  # the model code its config.json must name (rce_jax.models.FAMILIES)
    aliases: tuple[str, ...] = ()


@dataclasses.dataclass(frozen=True)
class Table:
    defaults: Defaults
    models: tuple[ModelEntry, ...]
    corpora: dict  # key -> CorpusEntry


def load_table(path=DEFAULT_CONFIG) -> Table:
    """Read and check the model/corpus table (the schema: ``TableFile``; docs/config.md)."""
    path = Path(path)
    try:
        file = from_dict(TableFile, read_file(path))
        models, seen = [], set()
        for fam, spec in file.families.items():
            for m in spec.models:
                names = (m.repo, *m.aliases)
                require(not seen & set(names), f"families.{fam}.models", f"{sorted(seen & set(names))} listed twice")
                seen.update(names)
                models.append(ModelEntry(fam, m.repo, spec.architecture, m.aliases))
        require(len(models) > 0, "families", "no models")
        corpora = {}
        for key, c in file.corpora.items():
            require(c.key in ("", key), f"corpora.{key}.key", "is the mapping's key; leave it out")
            corpora[key] = dataclasses.replace(c, key=key)
        for c in corpora.values():
            require(c.fallback is None or (c.fallback in corpora and c.fallback != c.key), f"corpora.{c.key}.fallback",
                    f"{c.fallback!r} is not another corpus of the table")
    except ConfigError as e:
        raise ConfigError(f"{path}: {e}") from None
    return Table(file.defaults, tuple(models), corpora)


# ---- where things are -----------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class ModelStatus:
    entry: ModelEntry
    status: str  # present | missing | incomplete | unsupported | wrong-architecture | context-too-long
    path: str | None = None
    reason: str = ""


def candidate_dirs(entry: ModelEntry, models_dir) -> list[Path]:
    """Folders under ``models_dir`` that may hold the model: ORG/NAME, NAME, ORG--NAME per name."""
    out = []
    for name in (entry.repo, *entry.aliases):
        for rel in (name, name.split("/")[-1], name.replace("/", "--")):
            p = Path(models_dir) / rel
            if p not in out:
                out.append(p)
    return out


def check_model_dir(entry: ModelEntry, path: Path, context_length: int) -> ModelStatus:
    lacks = [what for what, files in (("config.json", ("config.json",)), ("weights", WEIGHT_FILES),
                                      ("tokenizer files", TOKENIZER_FILES))
             if not any((path / f).exists() for f in files)]
    if lacks:
        return ModelStatus(entry, "incomplete", str(path), f"lacks {', '.join(lacks)}")
    try:
        config = load_config(str(path))
    except (ValueError, OSError) as e:
        return ModelStatus(entry, "unsupported", str(path), str(e).splitlines()[0])
    if config.family != entry.architecture:
        return ModelStatus(entry, "wrong-architecture", str(path),
                           f"config.json is {config.family!r}, the table expects {entry.architecture!r}")
    if config.max_position_embeddings < context_length:
        return ModelStatus(entry, "context-too-long", str(path),
                           f"context {context_length} > the model's {config.max_position_embeddings} positions")
    return ModelStatus(entry, "present", str(path))


def locate_model(entry: ModelEntry, *, models_dir=None, hf_cache=True, hf_cache_dir=None,
                 context_length: int) -> ModelStatus:
    """The model's folder (``models_dir`` first, then the local HF cache; never downloaded)."""
    looked = []
    if models_dir is not None:
        for d in candidate_dirs(entry, models_dir):
            if d.is_dir():
                return check_model_dir(entry, d, context_length)
        looked.append(f"{models_dir}")
    if hf_cache:
        from huggingface_hub import snapshot_download

        for name in (entry.repo, *entry.aliases):
            try:
                found = snapshot_download(name, cache_dir=hf_cache_dir, local_files_only=True)
            except (OSError, ValueError):  # not cached (LocalEntryNotFoundError), invalid id
                continue
            return check_model_dir(entry, Path(found), context_length)
        looked.append("the local Hugging Face cache")
    return ModelStatus(entry, "missing", None, "not found in " + (" or ".join(looked) or "nowhere (no --models-dir, HF cache off)"))


@dataclasses.dataclass(frozen=True)
class CorpusStatus:
    key: str
    spec: str | None
    available: bool
    reason: str = ""
    text_field: str = "text"


def tfds_prepared(name: str, data_dir: str | None) -> tuple[bool, str]:
    """Whether TFDS dataset ``name`` (``ds/config[:version]``) is prepared, by its files alone."""
    if importlib.util.find_spec("tensorflow_datasets") is None:
        return False, "tensorflow-datasets is not installed (pip install 'rce-jax[tfds]')"
    data_dir = data_dir or os.environ.get("TFDS_DATA_DIR") or str(Path.home() / "tensorflow_datasets")
    if "://" in data_dir:
        return True, f"in {data_dir} (remote: not checked)"
    base, _, version = name.partition(":")
    if any((Path(data_dir) / base).glob(f"{version or '*'}/dataset_info.json")):
        return True, f"prepared in {data_dir}"
    return False, f"not prepared in {data_dir} (run `tfds build {base}`, or set TFDS_DATA_DIR)"


def _hf_home() -> Path:
    return Path(os.environ.get("HF_HOME") or Path.home() / ".cache" / "huggingface")


def hf_available(kind: str, target: str) -> tuple[bool, str]:
    """Whether an ``hf:`` / ``wikitext`` corpus can be read offline, by its files alone: a
    save_to_disk or data folder, else the dataset's entry in the local datasets cache
    (``ORG___NAME``) or hub cache (``datasets--ORG--NAME``); as ``load_corpus`` reads them."""
    from rce_jax.data.hf_corpus import INSTALL_HINT, WIKITEXT

    if importlib.util.find_spec("datasets") is None:
        return False, f"the datasets package is not installed ({INSTALL_HINT})"
    if kind == "wikitext":
        name, config = (target, None) if target and Path(target).is_dir() else (WIKITEXT.name, target or WIKITEXT.config)
    else:
        name, config = (target, None) if Path(target).is_dir() else target.partition(":")[::2]
    if Path(name).is_dir():
        return True, "local folder"
    datasets_cache = Path(os.environ.get("HF_DATASETS_CACHE") or _hf_home() / "datasets")
    hub_cache = Path(os.environ.get("HF_HUB_CACHE") or _hf_home() / "hub")
    for folder in (datasets_cache / name.replace("/", "___"), hub_cache / ("datasets--" + name.replace("/", "--"))):
        if folder.is_dir():
            return True, f"cached in {folder.parent}"
    where = f"{name}:{config}" if config else name
    return False, (f"{where} is not in the local datasets cache ({datasets_cache}) nor the hub cache "
                   f"({hub_cache}), and nothing is downloaded")


def check_corpus(entry: CorpusEntry, overrides: dict, tfds_data_dir=None) -> CorpusStatus:
    spec = overrides.get(entry.key) or entry.spec or (os.environ.get(entry.spec_env) if entry.spec_env else None)
    if not spec:
        return CorpusStatus(entry.key, None, False, f"no spec: set ${entry.spec_env} or pass "
                            f"--corpus-spec {entry.key}=PATH", entry.text_field)
    kind, target, split = parse_spec(spec)
    if kind != "path" and split is None:
        raise ValueError(f"corpus {entry.key!r}: spec {spec!r} names no split; write it out "
                         f"(e.g. {spec}@validation) so that result names are unambiguous")
    if kind == "embedded":
        ok, why = True, "embedded"
    elif kind == "tfds":
        ok, why = tfds_prepared(target, tfds_data_dir)
    elif kind in ("hf", "wikitext"):
        ok, why = hf_available(kind, target)
    else:
        ok, why = Path(target).exists(), ("local" if Path(target).exists() else f"{target} does not exist")
    return CorpusStatus(entry.key, spec, ok, why, entry.text_field)


# ---- the plan ---------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class Run:
    model: ModelStatus
    corpus: CorpusStatus
    result: Path
    done: bool


@dataclasses.dataclass
class Plan:
    models: list  # ModelStatus of every selected model
    corpora: list  # CorpusStatus of every requested corpus
    used: list  # CorpusStatus of the corpora that run (fallbacks in place of unavailable ones)
    substitutes: dict  # requested key -> fallback key used instead
    runs: list  # Run per present model x used corpus

    @property
    def present(self):
        return [m for m in self.models if m.status == "present"]


def make_plan(table: Table, out, *, models_dir=None, hf_cache=True, hf_cache_dir=None, families=None,
              models=None, corpora=None, corpus_specs=None, fallback=True, tfds_data_dir=None,
              context_length: int, eval_config=None) -> Plan:
    """Which models are present, which corpora are available, and which results exist
    (``eval_config``: the settings the results are keyed by; default: only ``context_length``)."""
    from rce_jax.evaluate.runner import EvalConfig, result_path

    eval_config = eval_config or EvalConfig(context_length=context_length)

    known = sorted({m.family for m in table.models})
    if families and set(families) - set(known):
        raise ValueError(f"unknown families {sorted(set(families) - set(known))}; the table has {known}")
    chosen = [m for m in table.models if not families or m.family in families]
    if models:
        chosen = [m for m in chosen if any(s in (m.repo, *m.aliases) for s in models)]
        if not chosen:
            raise ValueError(f"--models {models} names no model of the selected families")
    corpora = corpora or [k for k, c in table.corpora.items() if c.default]
    if not corpora:
        raise ValueError("no corpus selected: pass --corpora, or mark corpora `default: true` in the table")
    unknown = set(corpora) - set(table.corpora) | set(corpus_specs or {}) - set(table.corpora)
    if unknown:
        raise ValueError(f"unknown corpora {sorted(unknown)}; the table has {sorted(table.corpora)}")
    if models_dir is not None and not Path(models_dir).is_dir():
        raise FileNotFoundError(f"--models-dir {models_dir}: no such folder")
    statuses = [locate_model(m, models_dir=models_dir, hf_cache=hf_cache, hf_cache_dir=hf_cache_dir,
                             context_length=context_length) for m in chosen]
    checked = {k: check_corpus(table.corpora[k], corpus_specs or {}, tfds_data_dir) for k in corpora}
    used, substitutes = [], {}
    for key in corpora:
        status, fb = checked[key], table.corpora[key].fallback
        if not status.available and fallback and fb:
            status = checked.get(fb) or check_corpus(table.corpora[fb], corpus_specs or {}, tfds_data_dir)
            substitutes[key] = fb
        if status.available and status.key not in [u.key for u in used]:
            used.append(status)
    runs = []
    for m in statuses:
        if m.status == "present":
            for c in used:
                path = result_path(Path(out) / "results", m.entry.repo, c.key, eval_config,
                                   model_path=m.path, data_spec=c.spec)
                runs.append(Run(m, c, path, path.exists()))
    return Plan(statuses, list(checked.values()), used, substitutes, runs)


def format_plan(plan: Plan) -> str:
    lines = [f"models: {len(plan.present)} of {len(plan.models)} present"]
    for m in plan.models:
        tag = "present" if m.status == "present" else m.status.upper()
        lines.append(f"  {tag:<19} {m.entry.family:<11} {m.entry.repo:<34} {m.path or ''}"
                     + (f"  ({m.reason})" if m.reason else ""))
    lines.append("corpora:")
    for c in plan.corpora:
        sub = f" -> using {plan.substitutes[c.key]} instead" if c.key in plan.substitutes else ""
        lines.append(f"  {c.key:<12} {'available' if c.available else 'NOT AVAILABLE':<14} "
                     f"{c.spec or '-'}  ({c.reason}){sub}")
    done = sum(r.done for r in plan.runs)
    lines.append(f"evaluations: {len(plan.runs)} ({done} done, {len(plan.runs) - done} to run) on "
                 f"{', '.join(f'{c.key} = {c.spec}' for c in plan.used) or 'no corpus'}")
    return "\n".join(lines)
