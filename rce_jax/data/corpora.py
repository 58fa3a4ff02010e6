"""Text corpora: one spec string names where the documents come from.

Spec syntax (:func:`load_corpus`)::

    python-docs[@SPLIT]        embedded prose (Python documentation topics)
    python-code[@SPLIT]        embedded code (standard-library sources)
    tfds:NAME[@SPLIT]          a prepared TFDS dataset, e.g. tfds:c4/en@validation
    hf:NAME[:CONFIG][@SPLIT]   a Hugging Face dataset from the local datasets cache, or a
                               save_to_disk folder NAME (optional extra ``hf``)
    wikitext[:CONFIG][@SPLIT]  lm-evaluation-harness's wikitext task corpus: the document-level
                               WikiText (EleutherAI/wikitext_document_level, CONFIG default
                               wikitext-2-raw-v1, or a save_to_disk folder of it), field
                               ``page``, with the harness's wikitext detokenizer (split: test)
    PATH                       a .txt file, a .jsonl file, or a directory of them

``SPLIT`` may also be passed as ``split=``; giving both, differently, is an
error. Embedded splits are ``all`` (default), ``train`` and ``heldout`` (see
:mod:`rce_jax.data.embedded`); TFDS splits are TFDS's own (default ``train``), as are
Hugging Face splits (default ``train``; ``test`` for ``wikitext``).
A path takes no split, and ``@`` in a path is part of the path. A local path
that happens to be called ``python-docs`` (or ``wikitext``) is reached as ``./python-docs``.

Local files are read as bytes and decoded as strict UTF-8 (a leading BOM is
dropped; line endings are kept as they are, so byte counts match the file):

* ``.txt``: the whole file is one document;
* ``.jsonl``: one JSON object per line, the document is its ``text_field``
  (default ``"text"``); blank lines are skipped;
* a directory: every ``.txt`` / ``.jsonl`` file below it (recursively, hidden
  files and folders skipped, other files ignored), in sorted order of their
  relative POSIX paths.

A detokenizer (``detokenizer="wikitext"``, ``--detokenizer`` on the command line) rewrites each
document before it is tokenized, while words and bytes are counted on the text as read, exactly
as lm-evaluation-harness's wikitext task does (:mod:`rce_jax.data.detokenize`).

Documents are kept exactly as read, empty ones included (lm-evaluation-harness
counts an empty document too; it scores no token). A corpus with no document,
or with only empty documents, is an error.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import itertools
import json
import os
from collections.abc import Iterable, Iterator
from pathlib import Path

from rce_jax.data import embedded

FINGERPRINT_VERSION = b"rce-jax-corpus-v1\0"
LOCAL_SUFFIXES = (".txt", ".jsonl")


@dataclasses.dataclass(frozen=True)
class Corpus:
    """An ordered collection of text documents.

    Attributes:
      name: the canonical spec it was loaded from (e.g. ``"python-docs@heldout"``).
      documents: the document texts, in corpus order.
      doc_names: one name per document, for messages (topic, module, ``file:line``).
      count_texts: the texts whose words and bytes the text metrics count, one per document, when
        they are not the documents themselves (a detokenized corpus counts the text as read).
    """

    name: str
    documents: tuple[str, ...]
    doc_names: tuple[str, ...]
    count_texts: tuple[str, ...] | None = None

    def __post_init__(self):
        if len(self.documents) != len(self.doc_names):
            raise ValueError(
                f"corpus {self.name!r}: {len(self.documents)} documents but "
                f"{len(self.doc_names)} names"
            )
        if not self.documents:
            raise ValueError(f"corpus {self.name!r} has no documents")
        for text, doc_name in zip(self.documents, self.doc_names):
            if not isinstance(text, str):
                raise TypeError(f"corpus {self.name!r}: document {doc_name!r} is not a str")
        if self.count_texts is not None and len(self.count_texts) != len(self.documents):
            raise ValueError(f"corpus {self.name!r}: {len(self.count_texts)} counted texts for "
                             f"{len(self.documents)} documents")
        if not any(self.documents):
            raise ValueError(f"corpus {self.name!r}: all {len(self.documents)} documents are empty")

    @functools.cached_property
    def fingerprint(self) -> str:
        """SHA-256 of the document texts in order (names do not count): the cache key.

        Counted texts that differ from the documents are hashed after them (a corpus without
        them keeps the fingerprint it always had)."""
        h = hashlib.sha256(FINGERPRINT_VERSION)
        for text in self.documents:
            data = text.encode("utf-8")
            h.update(len(data).to_bytes(8, "little"))
            h.update(data)
        if self.count_texts is not None:
            h.update(b"\0counted texts\0")
            for text in self.count_texts:
                data = text.encode("utf-8")
                h.update(len(data).to_bytes(8, "little"))
                h.update(data)
        return h.hexdigest()

    @property
    def counted_texts(self) -> tuple[str, ...]:
        """The texts whose words and bytes are counted (the documents unless told otherwise)."""
        return self.documents if self.count_texts is None else self.count_texts

    @property
    def num_chars(self) -> int:
        return sum(len(d) for d in self.documents)

    def __len__(self) -> int:
        return len(self.documents)

    def __iter__(self) -> Iterator[str]:
        return iter(self.documents)

    @classmethod
    def from_texts(cls, name: str, texts: Iterable[str]) -> "Corpus":
        """A corpus from in-memory texts, named ``"<name>#<index>"``."""
        texts = tuple(texts)
        return cls(name, texts, tuple(f"{name}#{i}" for i in range(len(texts))))


def _decode_utf8(data: bytes, where: str) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ValueError(f"{where}: not valid UTF-8 (byte {e.start}: {e.reason})") from e


def _read_bytes(path: Path) -> bytes:
    data = path.read_bytes()
    return data[3:] if data.startswith(b"\xef\xbb\xbf") else data


def _iter_txt(path: Path) -> Iterator[tuple[str, str]]:
    yield str(path), _decode_utf8(_read_bytes(path), str(path))


def _iter_jsonl(path: Path, text_field: str) -> Iterator[tuple[str, str]]:
    for lineno, line in enumerate(_read_bytes(path).split(b"\n"), start=1):
        where = f"{path}:{lineno}"
        line_text = _decode_utf8(line, where)
        if not line_text.strip():
            continue
        try:
            record = json.loads(line_text)
        except json.JSONDecodeError as e:
            raise ValueError(f"{where}: not valid JSON ({e.msg} at column {e.colno})") from e
        if not isinstance(record, dict):
            raise ValueError(f"{where}: expected a JSON object, got {type(record).__name__}")
        if text_field not in record:
            raise ValueError(
                f"{where}: no field {text_field!r} (fields: {sorted(record)}); choose one with --text-field (rce-jax train: --set data.text_field=...)"
            )
        text = record[text_field]
        if not isinstance(text, str):
            raise ValueError(f"{where}: field {text_field!r} is {type(text).__name__}, not a string")
        yield where, text


def _iter_file(path: Path, text_field: str) -> Iterator[tuple[str, str]]:
    if path.suffix == ".txt":
        return _iter_txt(path)
    if path.suffix == ".jsonl":
        return _iter_jsonl(path, text_field)
    raise ValueError(f"{path}: unsupported file type {path.suffix!r}; expected one of {LOCAL_SUFFIXES}")


def _corpus_files(directory: Path) -> list[Path]:
    found = []
    for root, dirs, files in os.walk(directory):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        for f in files:
            if not f.startswith(".") and Path(f).suffix in LOCAL_SUFFIXES:
                found.append(Path(root, f))
    found.sort(key=lambda p: p.relative_to(directory).as_posix())
    if not found:
        raise ValueError(f"{directory}: directory has no {' or '.join(LOCAL_SUFFIXES)} files")
    return found


def _iter_local(path: Path, text_field: str) -> Iterator[tuple[str, str]]:
    if not path.exists():
        raise FileNotFoundError(f"corpus path not found: {path}")
    if path.is_dir():
        for f in _corpus_files(path):
            yield from _iter_file(f, text_field)
    else:
        yield from _iter_file(path, text_field)


def parse_spec(spec: str, split: str | None = None) -> tuple[str, str, str | None]:
    """``(kind, target, split)`` with kind ``"embedded"``, ``"tfds"``, ``"hf"``, ``"wikitext"``
    or ``"path"``."""
    if not isinstance(spec, str) or not spec.strip():
        raise ValueError(f"corpus spec must be a non-empty string, got {spec!r}")

    def merged(inline: str | None) -> str | None:
        if inline is not None and not inline:
            raise ValueError(f"corpus spec {spec!r}: empty split after '@'")
        if inline is not None and split is not None and inline != split:
            raise ValueError(f"corpus spec {spec!r} names split {inline!r} but split={split!r}")
        return inline if inline is not None else split

    if spec.startswith("tfds:"):
        name, at, inline = spec[len("tfds:"):].partition("@")
        if not name:
            raise ValueError(f"corpus spec {spec!r}: no TFDS dataset name after 'tfds:'")
        return "tfds", name, merged(inline if at else None)
    for prefix in ("hf:", "wikitext:"):
        if spec.startswith(prefix):
            name, at, inline = spec[len(prefix):].rpartition("@") if "@" in spec else (spec[len(prefix):], "", "")
            if not name:
                raise ValueError(f"corpus spec {spec!r}: nothing after {prefix!r}")
            return prefix[:-1], name, merged(inline if at else None)
    base, at, inline = spec.partition("@")
    if base == "wikitext":
        return "wikitext", "", merged(inline if at else None)
    if base in embedded.EMBEDDED_CORPORA:
        return "embedded", base, merged(inline if at else None)
    if split is not None:
        raise ValueError(f"corpus spec {spec!r} is a local path, which takes no split (got {split!r})")
    return "path", spec, None


def load_corpus(
    spec: str,
    *,
    split: str | None = None,
    text_field: str = "text",
    max_docs: int | None = None,
    tfds_data_dir: str | None = None,
    detokenizer: str | None = None,
) -> Corpus:
    """Load the corpus that ``spec`` names (syntax in the module docstring).

    Args:
      spec: ``python-docs``, ``python-code``, ``tfds:NAME``, each with an
        optional ``@SPLIT``, or a local path.
      split: the split, if not given in ``spec``.
      text_field: the text field of ``.jsonl`` records and TFDS examples.
      max_docs: keep only the first ``max_docs`` documents (after the split).
      tfds_data_dir: where prepared TFDS datasets live (default: TFDS's own).
      detokenizer: a name in ``detokenize.DETOKENIZERS`` applied to every document (words and
        bytes are still counted on the text as read); ``wikitext`` specs apply theirs anyway.
    """
    from rce_jax.data.detokenize import DETOKENIZERS

    if detokenizer is not None and detokenizer not in DETOKENIZERS:
        raise ValueError(f"unknown detokenizer {detokenizer!r}; choose from {sorted(DETOKENIZERS)}")
    if max_docs is not None and (isinstance(max_docs, bool) or not isinstance(max_docs, int) or max_docs < 1):
        raise ValueError(f"max_docs must be a positive int or None, got {max_docs!r}")
    kind, target, split = parse_spec(spec, split)
    if tfds_data_dir is not None and kind != "tfds":
        raise ValueError(f"tfds_data_dir is only for 'tfds:' specs, not {spec!r}")
    if kind == "embedded":
        split = split or "all"
        named: Iterable[tuple[str, str]] = embedded.load_embedded(target, split)
        name = f"{target}@{split}"
    elif kind == "tfds":
        from rce_jax.data.tfds_corpus import iter_tfds

        split = split or "train"
        named = iter_tfds(target, split, text_field, max_docs, tfds_data_dir)
        name = f"tfds:{target}@{split}"
    elif kind in ("hf", "wikitext"):
        from rce_jax.data.hf_corpus import WIKITEXT, iter_hf

        if kind == "wikitext":
            source = target or WIKITEXT.config
            split = split or WIKITEXT.split
            named = iter_hf(WIKITEXT.name if not Path(source).is_dir() else source,
                            None if Path(source).is_dir() else source, split, WIKITEXT.text_field, max_docs)
            name = f"wikitext:{source}@{split}" if target else f"wikitext@{split}"
            if detokenizer not in (None, WIKITEXT.detokenizer):
                raise ValueError(f"corpus spec {spec!r} has its own detokenizer "
                                 f"({WIKITEXT.detokenizer!r}), not {detokenizer!r}")
            detokenizer = WIKITEXT.detokenizer
        else:
            dataset, _, config = target.partition(":") if not Path(target).is_dir() else (target, "", "")
            split = split or "train"
            named = iter_hf(dataset, config or None, split, text_field, max_docs)
            name = f"hf:{target}@{split}"
    else:
        named = _iter_local(Path(target), text_field)
        name = target
    pairs = list(itertools.islice(named, max_docs))
    texts = tuple(t for _, t in pairs)
    doc_names = tuple(n for n, _ in pairs)
    if detokenizer is None:
        return Corpus(name, texts, doc_names)
    detok = DETOKENIZERS[detokenizer]
    return Corpus(f"{name}+{detokenizer}" if kind != "wikitext" else name,
                  tuple(detok(t) for t in texts), doc_names, count_texts=texts)


def canonical_spec(spec: str, split: str | None = None) -> str:
    """The corpus source with local paths made absolute: the same corpus named three ways (a
    relative path, an absolute one, another relative one) gives one string."""
    kind, target, split = parse_spec(spec, split)
    if kind == "path" or (kind in ("hf", "wikitext") and target and Path(target.partition(":")[0]).is_dir()):
        target = os.path.realpath(target)
    return f"{kind}:{target}@{split}"


def as_corpus(spec_or_corpus, *, text_field: str = "text") -> Corpus:
    """A ``Corpus`` as it is, or the corpus a spec names (``load_corpus``)."""
    if isinstance(spec_or_corpus, Corpus):
        return spec_or_corpus
    return load_corpus(spec_or_corpus, text_field=text_field)
