"""Corpora from Hugging Face ``datasets`` (the optional ``hf`` extra), offline.

``datasets`` is imported only here, only when an ``hf:`` or ``wikitext`` spec is loaded, and
never downloads: ``NAME`` is either a folder written by ``Dataset.save_to_disk`` /
``DatasetDict.save_to_disk`` (read with ``load_from_disk``), or a dataset name (or a local data
folder) read by ``load_dataset`` with the hub switched off, i.e. from the local datasets cache
(``HF_DATASETS_CACHE``, ``HF_HOME``). Examples are read in the split's own order.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterator
from pathlib import Path

INSTALL_HINT = "pip install 'rce-jax[hf]'"


@dataclasses.dataclass(frozen=True)
class HarnessCorpus:
    """A corpus as an lm-evaluation-harness task reads it."""

    name: str
    config: str
    split: str
    text_field: str
    detokenizer: str


# lm-evaluation-harness's ``wikitext`` task (tasks/wikitext/wikitext.yaml of lm_eval 0.4.x).
WIKITEXT = HarnessCorpus("EleutherAI/wikitext_document_level", "wikitext-2-raw-v1", "test", "page",
                         "wikitext")


def _import_datasets():
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")  # read at import: no hub look-ups
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    try:
        import datasets
    except ImportError as e:
        raise ImportError(f"loading an 'hf:' or 'wikitext' corpus needs the datasets package; "
                          f"install it with: {INSTALL_HINT}") from e
    return datasets


def is_saved_dataset(path) -> bool:
    """Whether ``path`` is a folder written by ``save_to_disk`` (a Dataset or a DatasetDict)."""
    p = Path(path)
    return p.is_dir() and ((p / "dataset_dict.json").is_file() or (p / "state.json").is_file())


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def _open_split(datasets, name: str, config: str | None, split: str):
    if is_saved_dataset(name):
        if config:
            raise ValueError(f"hf:{name}: a save_to_disk folder takes no config (got {config!r})")
        saved = datasets.load_from_disk(name)
        if isinstance(saved, datasets.DatasetDict):
            if split not in saved:
                raise ValueError(f"hf:{name}: no split {split!r}; its splits are {sorted(saved)}")
            return saved[split]
        return saved  # a single Dataset: the split is whatever was saved
    try:
        return datasets.load_dataset(name, config, split=split)
    except (FileNotFoundError, ConnectionError, ValueError) as e:
        where = f"{name}:{config}" if config else name
        raise FileNotFoundError(
            f"Hugging Face dataset {where!r} (split {split!r}) is not in the local datasets cache "
            f"nor a save_to_disk folder, and nothing is downloaded: load it once with "
            f"datasets.load_dataset or save_to_disk it, then point at that ({_first_line(e)})") from e


def iter_hf(name: str, config: str | None, split: str, text_field: str,
            max_docs: int | None) -> Iterator[tuple[str, str]]:
    """(document name, text) pairs: field ``text_field`` of every example of ``split``, in order.

    The document name is ``"<name>@<split>#<index>"``.
    """
    datasets = _import_datasets()
    ds = _open_split(datasets, name, config, split)
    if text_field not in ds.column_names:
        raise ValueError(f"Hugging Face dataset {name!r} has no field {text_field!r}; its fields are "
                         f"{sorted(ds.column_names)} (pass --text-field)")
    column = ds[text_field] if max_docs is None else ds.select(range(min(max_docs, len(ds))))[text_field]
    for index, value in enumerate(column):
        where = f"{name}@{split}#{index}"
        if not isinstance(value, str):
            raise ValueError(f"{where}: field {text_field!r} is {type(value).__name__}, not text")
        yield where, value
