"""Hugging Face corpora (``hf:NAME[:CONFIG]@SPLIT``), offline, on datasets the tests build.

Needs the optional ``datasets`` package (the ``harness`` extra); skipped without it, except
under RCE_JAX_REQUIRE_HARNESS=1 (CI).
"""

import importlib
import os

import pytest

from rce_jax.data import load_corpus
from rce_jax.data.corpora import canonical_spec

pytestmark = pytest.mark.harness


@pytest.fixture(scope="module")
def datasets(tmp_path_factory):
    os.environ.setdefault("HF_DATASETS_CACHE", str(tmp_path_factory.mktemp("hf_datasets_cache")))
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    if os.environ.get("RCE_JAX_REQUIRE_HARNESS") == "1":
        return importlib.import_module("datasets")
    return pytest.importorskip("datasets")


TEXTS = {"train": ["first train doc", "", "third \u00fcber doc\n"], "test": ["a test doc", "another one"]}


def test_save_to_disk_folder_reads_each_split_in_order(datasets, tmp_path):
    """A DatasetDict saved with save_to_disk reads as ``hf:FOLDER@SPLIT``: the chosen field of every
    example in order (empty ones kept), default split ``train``; a single saved Dataset reads as
    it is; a relative and an absolute spelling of the folder give one canonical source."""
    folder = tmp_path / "dd"
    datasets.DatasetDict({k: datasets.Dataset.from_dict({"body": v, "n": list(range(len(v)))})
                          for k, v in TEXTS.items()}).save_to_disk(str(folder))
    for split, texts in TEXTS.items():
        c = load_corpus(f"hf:{folder}@{split}", text_field="body")
        assert c.documents == tuple(texts) and c.name == f"hf:{folder}@{split}"
        assert c.doc_names[0] == f"{folder}@{split}#0"
    assert load_corpus(f"hf:{folder}", text_field="body").documents == tuple(TEXTS["train"])
    assert load_corpus(f"hf:{folder}@test", text_field="body", max_docs=1).documents == ("a test doc",)
    single = tmp_path / "single"
    datasets.Dataset.from_dict({"text": TEXTS["test"]}).save_to_disk(str(single))
    assert load_corpus(f"hf:{single}@test").documents == tuple(TEXTS["test"])
    cwd = os.getcwd()
    try:
        os.chdir(tmp_path)
        assert canonical_spec("hf:dd@test") == canonical_spec(f"hf:{folder}@test")
    finally:
        os.chdir(cwd)


def test_load_dataset_path_reads_local_data_files_offline(datasets, tmp_path):
    """A name that is not a save_to_disk folder goes to ``datasets.load_dataset`` with the hub off:
    a local folder of parquet files reads (split as named), a hub name that is not cached is a
    FileNotFoundError saying nothing is downloaded."""
    data = tmp_path / "parquet_ds"
    data.mkdir()
    datasets.Dataset.from_dict({"text": TEXTS["test"]}).to_parquet(str(data / "test-00000.parquet"))
    c = load_corpus(f"hf:{data}@test")
    assert c.documents == tuple(TEXTS["test"])
    with pytest.raises(FileNotFoundError, match="nothing is downloaded"):
        load_corpus("hf:surely-not/a-cached-dataset-xyz:cfg@test")


def test_bad_fields_and_splits_are_named(datasets, tmp_path):
    """A missing field lists the fields there are; a missing split lists the splits; a config
    given to a save_to_disk folder is refused."""
    folder = tmp_path / "dd"
    datasets.DatasetDict({"train": datasets.Dataset.from_dict({"body": ["x"]})}).save_to_disk(str(folder))
    with pytest.raises(ValueError, match=r"no field 'text'.*\['body'\]"):
        load_corpus(f"hf:{folder}@train")
    with pytest.raises(ValueError, match=r"no split 'test'.*\['train'\]"):
        load_corpus(f"hf:{folder}@test", text_field="body")
    with pytest.raises(ValueError, match="takes no config"):
        load_corpus(f"hf:{folder}:wikitext-2-raw-v1@train", text_field="body")


def test_wikitext_spec_detokenizes_and_counts_the_page_as_read(datasets, tmp_path):
    """``wikitext:FOLDER@test`` reads field ``page``, detokenizes each document, and counts words and
    bytes on the page as read (as the harness's wikitext task); its fingerprint differs from the
    raw pages' corpus."""
    from rce_jax.data.detokenize import wikitext

    pages = [" = T = \n a @-@ b , c . \n", " x ( y ) 's \n"]
    folder = tmp_path / "wt"
    datasets.DatasetDict({"test": datasets.Dataset.from_dict({"page": pages})}).save_to_disk(str(folder))
    c = load_corpus(f"wikitext:{folder}")
    assert c.documents == tuple(wikitext(p) for p in pages) and c.counted_texts == tuple(pages)
    assert c.documents != tuple(pages)
    raw = load_corpus(f"hf:{folder}@test", text_field="page")
    assert raw.documents == tuple(pages) and raw.fingerprint != c.fingerprint
    again = load_corpus(f"hf:{folder}@test", text_field="page", detokenizer="wikitext")
    assert again.documents == c.documents and again.fingerprint == c.fingerprint
