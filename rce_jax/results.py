"""The evaluation result record: one typed, versioned schema, written and read only here.

``rce-jax eval`` (``rce_jax.evaluate.runner.evaluate``), the trainer's periodic evaluations
(``rce_jax.train.evals.run_evals``) and the demo (through ``evaluate``) all build an
:class:`EvalResult` with :func:`build_result`; ``rce-jax scaling``, ``rce-jax stats``, the plots
and the experiments read it back with :func:`read_result` / :meth:`EvalResult.from_dict`.
docs/results.md describes every field and where it is computed.

Version 2 (this one) adds the dataset's own name beside its spec, the tokenizer fingerprint,
the tokenization convention and the producer. Version 1 files (written before) still read:
their missing fields are derived (``tokenization`` is ``"plain"``, the only convention v1 had;
the tokenizer fingerprint is unknown, ``None``).

The record is also a read-only mapping of its JSON fields (``r["ce"]``, ``r.get("profile")``,
``{**r}``), so code written against the JSON files reads the typed record unchanged.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from .io import slug, write_json

SCHEMA = "rce-jax/eval-result"
VERSION = 2
READABLE_VERSIONS = (1, 2)
PRODUCERS = ("eval", "train")
# Tokenization conventions (docs/harness.md): "plain" scores every document token once after one
# prefix token (lm-evaluation-harness < 0.4.9.2, or any version with add_bos_token=False);
# "special_tokens" encodes each document with the tokenizer's own special tokens after the prefix
# token (lm-evaluation-harness >= 0.4.9.2).
TOKENIZATIONS = ("plain", "special_tokens")
# The settings that change the numbers: results that differ in one of them are different results
# (their file names differ, and ``rce-jax scaling`` never fits them together).
NUMBER_SETTINGS = ("context_length", "tokenization", "rank_vocab", "dtype", "ranked_logits_dtype",
                   "max_tokens")


class ResultFileError(ValueError):
    """A file that is not an evaluation result of a version this rce-jax reads."""


@dataclasses.dataclass(frozen=True, eq=False)
class EvalResult(Mapping):
    """One model scored on one corpus under one set of settings (docs/results.md, field by field).

    ``intervals`` is the optional uncertainty block (``{"method", "replicates", "level",
    "<metric>": [lo, hi], ...}``); ``None`` when no interval was computed.
    """

    model: str
    model_path: str
    family: str
    architecture: str
    n_params: int
    n_params_non_embedding: int
    dataset: str
    dataset_spec: str
    corpus_fingerprint: str
    tokenizer_fingerprint: str | None
    n_documents: int
    n_tokens: int
    ce: float
    ee: float
    sa: float
    conf: float
    log_C: float
    ee_share: float
    top1: float
    n_tied_tokens: int
    sum_logprob: float
    num_words: int
    num_bytes: int
    token_perplexity: float
    word_perplexity: float
    byte_perplexity: float
    bits_per_byte: float
    rank_stats: dict
    settings: dict
    producer: str = "eval"
    step: int | None = None
    profile: dict | None = None
    intervals: dict | None = None
    versions: dict = dataclasses.field(default_factory=dict)
    timings: dict = dataclasses.field(default_factory=dict)

    def __post_init__(self):
        if self.producer not in PRODUCERS:
            raise ValueError(f"producer must be one of {PRODUCERS}, got {self.producer!r}")
        missing = [k for k in NUMBER_SETTINGS if k not in self.settings]
        if missing:
            raise ValueError(f"result of {self.model!r} on {self.dataset!r}: settings lack {missing}")
        if self.settings["tokenization"] not in TOKENIZATIONS:
            raise ValueError(f"tokenization must be one of {TOKENIZATIONS}, "
                             f"got {self.settings['tokenization']!r}")

    # ---- the mapping view: exactly the JSON fields -------------------------------------
    def to_dict(self) -> dict:
        """The JSON object written to a result file."""
        return {"schema": SCHEMA, "version": VERSION,
                **{f.name: getattr(self, f.name) for f in dataclasses.fields(self)}}

    def __getitem__(self, key):
        if key in ("schema", "version"):
            return SCHEMA if key == "schema" else VERSION
        if key in _FIELD_NAMES:
            return getattr(self, key)
        raise KeyError(key)

    def __iter__(self):
        return iter(("schema", "version", *_FIELD_NAMES))

    def __len__(self) -> int:
        return 2 + len(_FIELD_NAMES)

    def __eq__(self, other):
        return isinstance(other, EvalResult) and self.to_dict() == other.to_dict()

    __hash__ = None

    # ---- derived views -----------------------------------------------------------------
    @property
    def number_settings(self) -> dict:
        """The settings that change the numbers (``NUMBER_SETTINGS``)."""
        return {k: self.settings[k] for k in NUMBER_SETTINGS}

    def rank_stats_object(self):
        """The ``RankStats`` behind this result (what ``eval --save-stats`` writes, same meta)."""
        from .stats import RankStats

        rs = self.rank_stats
        V = int(rs["vocab_size"])
        count = np.zeros(V, np.int64)
        total = np.zeros(V, np.float64)
        count[np.asarray(rs["ranks"], np.int64)] = np.asarray(rs["count"], np.int64)
        total[np.asarray(rs["ranks"], np.int64)] = np.asarray(rs["sum_logp"], np.float64)
        return RankStats(V, count, total, int(self.n_tied_tokens), stats_meta(self.settings))

    @classmethod
    def from_dict(cls, d: Mapping, where: str = "result") -> EvalResult:
        """Read a result object of any version in ``READABLE_VERSIONS``."""
        if not isinstance(d, Mapping) or d.get("schema") != SCHEMA:
            raise ResultFileError(f"{where}: not an `rce-jax eval` result (schema is not {SCHEMA!r})")
        version = d.get("version")
        if version not in READABLE_VERSIONS:
            raise ResultFileError(f"{where}: result version {version!r}; this rce-jax reads "
                                  f"versions {list(READABLE_VERSIONS)}")
        d = _upgrade_v1(d) if version == 1 else dict(d)
        names = set(_FIELD_NAMES)
        required = {f.name for f in dataclasses.fields(cls)
                    if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING}
        missing = sorted(required - d.keys())
        if missing:
            raise ResultFileError(f"{where}: result lacks fields {missing}")
        try:
            return cls(**{k: v for k, v in d.items() if k in names})
        except (TypeError, ValueError) as e:
            raise ResultFileError(f"{where}: {e}") from e


_FIELD_NAMES = tuple(f.name for f in dataclasses.fields(EvalResult))


def _upgrade_v1(d: Mapping) -> dict:
    """A version-1 record in version-2 fields (nothing measured is changed)."""
    out = dict(d)
    settings = dict(d.get("settings", {}))
    settings.setdefault("tokenization", "plain")  # v1 had only this convention
    settings.setdefault("max_tokens", None)
    out["settings"] = settings
    out.setdefault("dataset_spec", d.get("dataset"))
    out.setdefault("corpus_fingerprint", settings.get("corpus_fingerprint"))
    out.setdefault("tokenizer_fingerprint", None)
    out.setdefault("producer", "eval")
    return out


def stats_meta(settings: Mapping) -> dict:
    """The ``RankStats.meta`` of a result's statistics: what merging must agree on."""
    return {"tie_rule": settings.get("tie_rule"), "ranked_logits_dtype": settings.get("ranked_logits_dtype"),
            "vocab_limit": settings.get("vocab_limit")}


def build_result(stats, text_metrics, *, model: str, model_path: str, family: str, architecture: str,
                 counts: Mapping, dataset: str, dataset_spec: str, corpus_fingerprint: str,
                 tokenizer_fingerprint: str | None, n_documents: int, settings: Mapping,
                 producer: str = "eval", step: int | None = None, profile=None, bootstrap=None,
                 versions: Mapping | None = None, timings: Mapping | None = None) -> EvalResult:
    """The record of ``stats`` (a ``RankStats``) and ``text_metrics`` (``data.TextMetrics``);
    with ``bootstrap`` (a ``bootstrap.BootstrapStats`` of the same pass) its intervals.

    Every producer goes through here, so a result means the same whoever made it.
    """
    dec = stats.decompose()
    rs = stats.sparse()
    count = np.asarray(rs["count"], np.float64)
    text = text_metrics.as_dict()
    if text["num_tokens"] != dec.n_tokens:
        raise ValueError(f"text metrics count {text['num_tokens']} tokens, the statistics {dec.n_tokens}")
    return EvalResult(
        model=model, model_path=str(model_path), family=family, architecture=architecture,
        n_params=int(counts["total"]), n_params_non_embedding=int(counts["non_embedding"]),
        dataset=dataset, dataset_spec=dataset_spec, corpus_fingerprint=corpus_fingerprint,
        tokenizer_fingerprint=tokenizer_fingerprint, n_documents=int(n_documents),
        n_tokens=dec.n_tokens, ce=dec.ce, ee=dec.ee, sa=dec.sa, conf=dec.conf, log_C=dec.log_C,
        ee_share=dec.ee_share, top1=dec.top1, n_tied_tokens=int(stats.n_tied),
        sum_logprob=text["sum_logprob"], num_words=text["num_words"], num_bytes=text["num_bytes"],
        token_perplexity=text["token_perplexity"], word_perplexity=text["word_perplexity"],
        byte_perplexity=text["byte_perplexity"], bits_per_byte=text["bits_per_byte"],
        rank_stats={"vocab_size": stats.vocab_size, **rs, "p": (count / dec.n_tokens).tolist(),
                    "log_Q": (np.asarray(rs["sum_logp"]) / count).tolist()},
        settings=dict(settings), producer=producer, step=step,
        profile=profile.to_dict() if profile is not None else None,
        intervals=(bootstrap.summary({"ce": dec.ce, "ee": dec.ee, "sa": dec.sa, "conf": dec.conf,
                                      "ee_share": dec.ee_share}) if bootstrap is not None else None),
        versions=dict(versions or {}), timings=dict(timings or {}))


def write_result(path, result: EvalResult) -> None:
    """Write ``result`` to ``path`` atomically (complete under its name, or not there)."""
    write_json(path, result.to_dict())


def read_result(path) -> EvalResult:
    """The result in ``path``; a file that is not one names itself in a ResultFileError."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ResultFileError(f"{path}: not a readable result file ({e})") from e
    return EvalResult.from_dict(data, str(path))


def is_result(obj) -> bool:
    """Whether a parsed JSON object claims to be an evaluation result (any version)."""
    return isinstance(obj, Mapping) and obj.get("schema") == SCHEMA


# ---- file names ------------------------------------------------------------------------

def settings_tag(settings: Mapping) -> str:
    """The number-changing settings as a file-name part, e.g. ``L64-plain-rankmodel-float32``.

    A float32 ranking of lower-precision logits adds ``-rank32``; a token cap adds ``-max<N>``.
    """
    parts = [f"L{settings['context_length']}", settings["tokenization"].replace("_", ""),
             f"rank{settings['rank_vocab']}", str(settings["dtype"])]
    if settings["ranked_logits_dtype"] != settings["dtype"]:
        parts.append("rank32" if settings["ranked_logits_dtype"] == "float32"
                     else f"rank{settings['ranked_logits_dtype']}")
    if settings.get("max_tokens") is not None:
        parts.append(f"max{settings['max_tokens']}")
    return "-".join(parts)


def source_key(model_path: str, data_source: str) -> str:
    """8 hex digits of the model location and the corpus source (``corpora.canonical_spec``):
    two models or corpora that share a name never share a file."""
    return hashlib.sha256(f"{model_path}\n{data_source}".encode()).hexdigest()[:8]


def result_file_name(model: str, dataset: str, settings: Mapping, key: str) -> str:
    """``<model>__<dataset>__<settings tag>__<source key>.json``."""
    return f"{slug(model)}__{slug(dataset)}__{settings_tag(settings)}__{key}.json"

