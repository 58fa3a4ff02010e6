"""Corpora: the embedded defaults, local files, the spec syntax, and every bad input."""

import json
import sys

import pytest

from rce_jax.data import CODE_MODULES, Corpus, is_heldout, load_corpus, parse_spec
from rce_jax.data import embedded


@pytest.mark.parametrize("name", ["python-docs", "python-code"])
def test_embedded_corpus_loads_and_splits_partition_it(name):
    """train and heldout are disjoint, together are `all`, keep corpus order, and obey is_heldout."""
    full = load_corpus(name)
    train = load_corpus(name, split="train")
    held = load_corpus(f"{name}@heldout")
    assert full.name == f"{name}@all" and held.name == f"{name}@heldout"
    assert len(full) > 50 and full.num_chars > 300_000
    assert all(isinstance(d, str) and d for d in full.documents)
    assert set(train.doc_names).isdisjoint(held.doc_names)
    assert sorted(train.doc_names + held.doc_names) == sorted(full.doc_names)
    assert 0 < len(held) < len(train)
    by_name = dict(zip(full.doc_names, full.documents))
    for corpus, want in ((train, False), (held, True)):
        assert [n for n in full.doc_names if is_heldout(name, n) == want] == list(corpus.doc_names)
        assert all(by_name[n] == d for n, d in zip(corpus.doc_names, corpus.documents))


def test_embedded_corpora_are_deterministic():
    """Loading twice gives identical documents and fingerprints; the two corpora differ."""
    for name in ("python-docs@train", "python-code@heldout"):
        a, b = load_corpus(name), load_corpus(name)
        assert a.documents == b.documents and a.fingerprint == b.fingerprint
    assert load_corpus("python-docs").fingerprint != load_corpus("python-code").fingerprint


def test_python_docs_is_the_pydoc_topics():
    """python-docs is pydoc_data.topics.topics, one document per topic in sorted order."""
    from pydoc_data.topics import topics

    corpus = load_corpus("python-docs")
    assert list(corpus.doc_names) == sorted(topics)
    assert list(corpus.documents) == [topics[k] for k in sorted(topics)]


def test_python_code_reads_the_listed_stdlib_sources():
    """python-code documents are the bytes of the listed stdlib files, in list order."""
    import sysconfig
    from pathlib import Path

    corpus = load_corpus("python-code", max_docs=5)
    assert list(corpus.doc_names) == CODE_MODULES[:5]
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    assert corpus.documents[0] == (stdlib / "abc.py").read_bytes().decode("utf-8")


def test_python_code_missing_modules_warn_or_fail(monkeypatch):
    """A listed module this Python lacks is skipped with a warning; none at all is an error."""
    monkeypatch.setattr(embedded, "CODE_MODULES", ["abc", "no_such_module_rce"])
    with pytest.warns(UserWarning, match="no_such_module_rce"):
        corpus = load_corpus("python-code")
    assert corpus.doc_names == ("abc",)
    monkeypatch.setattr(embedded, "CODE_MODULES", ["no_such_module_rce"])
    with pytest.raises(FileNotFoundError, match="none of the 1 listed"):
        load_corpus("python-code")


def test_spec_parsing():
    """The spec syntax: embedded[@split], tfds:NAME[@split], anything else is a path."""
    assert parse_spec("python-docs") == ("embedded", "python-docs", None)
    assert parse_spec("python-code@train") == ("embedded", "python-code", "train")
    assert parse_spec("python-code", "heldout") == ("embedded", "python-code", "heldout")
    assert parse_spec("tfds:c4/en@validation") == ("tfds", "c4/en", "validation")
    assert parse_spec("tfds:wikipedia/20230601.en") == ("tfds", "wikipedia/20230601.en", None)
    assert parse_spec("data/a@b.jsonl") == ("path", "data/a@b.jsonl", None)
    assert parse_spec("./python-docs") == ("path", "./python-docs", None)


@pytest.mark.parametrize(
    "spec, kwargs, match",
    [
        ("python-docs@train", {"split": "heldout"}, "names split 'train' but split='heldout'"),
        ("python-docs@", {}, "empty split"),
        ("python-docs@test", {}, "unknown split 'test'"),
        ("tfds:", {}, "no TFDS dataset name"),
        ("", {}, "non-empty string"),
        ("some/file.txt", {"split": "train"}, "takes no split"),
        ("python-docs", {"max_docs": 0}, "max_docs must be a positive int"),
        ("python-docs", {"tfds_data_dir": "/x"}, "only for 'tfds:' specs"),
    ],
)
def test_bad_specs_raise_clear_errors(spec, kwargs, match):
    """Each malformed spec or argument raises a ValueError saying what is wrong."""
    with pytest.raises(ValueError, match=match):
        load_corpus(spec, **kwargs)


def test_txt_file_is_one_document_kept_byte_exact(tmp_path):
    """A .txt file is one document: BOM dropped, CRLF and non-ASCII text kept as is."""
    path = tmp_path / "a.txt"
    path.write_bytes(b"\xef\xbb\xbfline one\r\nl\xc3\xadne two\n")
    corpus = load_corpus(str(path))
    assert corpus.documents == ("line one\r\nlíne two\n",)
    assert corpus.doc_names == (str(path),) and corpus.name == str(path)


def test_jsonl_one_document_per_line(tmp_path):
    """A .jsonl has one document per non-blank line, from `text` or text_field; max_docs truncates."""
    path = tmp_path / "d.jsonl"
    rows = [{"text": "alpha", "body": "A"}, {"text": "", "body": "B"}, {"text": "γ δ", "body": "C"}]
    path.write_text(json.dumps(rows[0]) + "\n\n" + "\n".join(json.dumps(r) for r in rows[1:]) + "\n")
    corpus = load_corpus(str(path))
    assert corpus.documents == ("alpha", "", "γ δ")
    assert corpus.doc_names == (f"{path}:1", f"{path}:3", f"{path}:4")
    assert load_corpus(str(path), text_field="body").documents == ("A", "B", "C")
    assert load_corpus(str(path), max_docs=2).documents == ("alpha", "")


def test_directory_is_read_recursively_in_sorted_order(tmp_path):
    """A directory yields its .txt/.jsonl files sorted by relative path; hidden and other files are skipped."""
    (tmp_path / "b").mkdir()
    (tmp_path / ".hidden").mkdir()
    (tmp_path / "b" / "z.txt").write_text("zed")
    (tmp_path / "a.jsonl").write_text('{"text": "one"}\n{"text": "two"}\n')
    (tmp_path / "c.txt").write_text("see")
    (tmp_path / "notes.md").write_text("ignored")
    (tmp_path / ".x.txt").write_text("hidden")
    (tmp_path / ".hidden" / "y.txt").write_text("hidden")
    corpus = load_corpus(str(tmp_path))
    assert corpus.documents == ("one", "two", "zed", "see")
    again = load_corpus(str(tmp_path))
    assert again.fingerprint == corpus.fingerprint


def test_fingerprint_is_a_content_hash():
    """The fingerprint depends on the texts and their order, not on names."""
    a = Corpus("x", ("ab", "c"), ("1", "2"))
    assert a.fingerprint == Corpus("y", ("ab", "c"), ("p", "q")).fingerprint
    assert a.fingerprint != Corpus("x", ("c", "ab"), ("1", "2")).fingerprint
    assert a.fingerprint != Corpus("x", ("a", "bc"), ("1", "2")).fingerprint
    assert Corpus.from_texts("t", ["ab", "c"]).fingerprint == a.fingerprint


def _write(tmp_path, name, data: bytes):
    path = tmp_path / name
    path.write_bytes(data)
    return str(path)


@pytest.mark.parametrize(
    "name, data, error, match",
    [
        ("bad.txt", b"ok \xff\xfe", ValueError, r"bad\.txt: not valid UTF-8 \(byte 3"),
        ("bad.jsonl", b'{"text": "a"}\n{"text": "\xc3"}\n', ValueError, r"bad\.jsonl:2: not valid UTF-8"),
        ("bad.jsonl", b'{"text": "a"}\n{"text": \n', ValueError, r"bad\.jsonl:2: not valid JSON"),
        ("bad.jsonl", b'["text"]\n', ValueError, r"bad\.jsonl:1: expected a JSON object, got list"),
        ("bad.jsonl", b'{"text": "a"}\n{"body": "b"}\n', ValueError, r"bad\.jsonl:2: no field 'text' \(fields: \['body'\]\)"),
        ("bad.jsonl", b'{"text": 3}\n', ValueError, r"bad\.jsonl:1: field 'text' is int, not a string"),
        ("empty.jsonl", b"\n \n", ValueError, r"corpus '.*empty\.jsonl' has no documents"),
        ("blank.txt", b"", ValueError, r"all 1 documents are empty"),
        ("data.csv", b"a,b\n", ValueError, r"data\.csv: unsupported file type '\.csv'"),
    ],
)
def test_bad_local_files_raise_errors_naming_the_file(tmp_path, name, data, error, match):
    """Non-UTF-8, malformed JSON, a missing or non-string field, an empty corpus: clear errors with file:line."""
    with pytest.raises(error, match=match):
        load_corpus(_write(tmp_path, name, data))


def test_missing_path_and_empty_directory(tmp_path):
    """A missing path is FileNotFoundError; a directory without corpus files is a ValueError naming it."""
    with pytest.raises(FileNotFoundError, match="corpus path not found: .*nowhere"):
        load_corpus(str(tmp_path / "nowhere"))
    (tmp_path / "readme.md").write_text("x")
    with pytest.raises(ValueError, match="directory has no .txt or .jsonl files"):
        load_corpus(str(tmp_path))


def test_tfds_spec_without_tfds_installed_says_how_to_install(monkeypatch):
    """Without tensorflow-datasets, a tfds: spec raises ImportError naming the rce-jax[tfds] extra."""
    monkeypatch.setitem(sys.modules, "tensorflow_datasets", None)
    with pytest.raises(ImportError, match=r"pip install 'rce-jax\[tfds\]'"):
        load_corpus("tfds:c4/en")
