"""TFDS corpora through tfds.testing.mock_data (needs the optional tfds extra; skipped without it)."""

import importlib
import os

import pytest

from rce_jax.data import load_corpus

pytestmark = pytest.mark.tfds


@pytest.fixture(scope="module")
def tfds():
    """tensorflow_datasets, imported only when a tfds test runs (skipped where it is not installed,
    except under RCE_JAX_REQUIRE_TFDS=1, which CI sets so that these tests cannot pass by skipping)."""
    if os.environ.get("RCE_JAX_REQUIRE_TFDS") == "1":
        return importlib.import_module("tensorflow_datasets")
    return pytest.importorskip("tensorflow_datasets")


def test_tfds_corpus_reads_the_text_field_in_order(tfds):
    """tfds:c4/en@validation yields the examples' `text`, decoded, in the dataset's order; max_docs truncates."""
    with tfds.testing.mock_data(num_examples=6):
        want = [ex["text"].decode("utf-8") for ex in tfds.as_numpy(tfds.load("c4/en", split="validation"))]
        corpus = load_corpus("tfds:c4/en@validation")
        again = load_corpus("tfds:c4/en", split="validation", max_docs=4)
    assert corpus.name == "tfds:c4/en@validation"
    assert list(corpus.documents) == want and len(want) == 6
    assert again.documents == corpus.documents[:4]
    assert corpus.doc_names[2] == "c4/en@validation#2"


def test_tfds_other_text_field_and_default_split(tfds):
    """text_field picks another string feature; the default split is train."""
    with tfds.testing.mock_data(num_examples=3):
        titles = load_corpus("tfds:wikipedia/20230601.en", text_field="title")
        want = [ex["title"].decode("utf-8") for ex in tfds.as_numpy(tfds.load("wikipedia/20230601.en", split="train"))]
    assert titles.name == "tfds:wikipedia/20230601.en@train"
    assert list(titles.documents) == want


def test_tfds_errors(tfds):
    """An unknown dataset or config, or a missing field, is a ValueError naming it."""
    with tfds.testing.mock_data(num_examples=2):
        with pytest.raises(ValueError, match="unknown TFDS dataset 'no_such_dataset_rce'"):
            load_corpus("tfds:no_such_dataset_rce")
        with pytest.raises(ValueError, match="unknown TFDS dataset 'c4/no_such_config'"):
            load_corpus("tfds:c4/no_such_config")
        with pytest.raises(ValueError, match=r"has no feature 'body'; its features are \['content-length'"):
            load_corpus("tfds:c4/en", text_field="body")


def test_tfds_unprepared_dataset_is_not_downloaded(tfds, tmp_path):
    """A dataset absent from the data dir raises FileNotFoundError telling how to prepare it."""
    with pytest.raises(FileNotFoundError, match=r"not prepared .*tfds build c4/en") as info:
        load_corpus("tfds:c4/en@validation", tfds_data_dir=str(tmp_path))
    assert str(tmp_path) in str(info.value)
