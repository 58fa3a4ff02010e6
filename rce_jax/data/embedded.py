"""The two corpora that ship with every Python install: no download needed.

``python-docs``
    Prose: the Python documentation topics that ``pydoc`` uses
    (``pydoc_data.topics.topics``), one document per topic, in sorted topic
    order. Document name: the topic key (``"assert"``, ``"assignment"``, ...).

``python-code``
    Code: the source of a fixed list of pure-Python standard-library modules
    (:data:`CODE_MODULES`, chosen to exist in CPython 3.11 through 3.13), one
    document per source file, in the order of that list. A module is found as
    ``<stdlib>/a/b.py`` or, for a package, ``<stdlib>/a/b/__init__.py`` under
    ``sysconfig.get_paths()["stdlib"]``; sources are decoded as Python decodes
    them (PEP 263 coding cookie, UTF-8 by default), without newline
    translation. A listed module that this install lacks is skipped with a
    :class:`UserWarning` naming it; if none is found the load fails. Document
    name: the dotted module name.

Both are the text of the *running* interpreter, so they differ a little
between Python versions; :attr:`Corpus.fingerprint` (a content hash) tells
them apart, so caches never mix them.

Splits are fixed by a stable hash of ``"<corpus>/<document name>"``: a
document is held out iff ``int(sha256(...)[:16], 16) % 5 == 0`` (about 20%),
otherwise it is in ``train``. A document's split never depends on which other
documents exist. ``all`` is every document (the default).
"""

from __future__ import annotations

import hashlib
import io
import os
import sysconfig
import tokenize
import warnings

EMBEDDED_CORPORA = ("python-docs", "python-code")
SPLITS = ("all", "train", "heldout")
HELDOUT_MODULUS = 5

CODE_MODULES = (
    "abc argparse ast base64 bdb bisect calendar cmd code codecs codeop collections "
    "colorsys configparser contextlib copy copyreg csv dataclasses datetime difflib dis "
    "doctest email.message enum filecmp fileinput fnmatch fractions ftplib functools getopt "
    "gettext glob graphlib gzip hashlib heapq hmac html.parser http.client http.server "
    "imaplib inspect ipaddress json.decoder json.encoder keyword linecache locale logging "
    "lzma mailbox mimetypes modulefinder netrc numbers opcode operator optparse os pathlib "
    "pdb pickle pickletools pkgutil platform plistlib poplib posixpath pprint profile pstats "
    "py_compile pyclbr queue quopri random re._parser re._compiler reprlib rlcompleter sched "
    "secrets selectors shelve shlex shutil smtplib socket socketserver statistics string "
    "stringprep struct subprocess symtable sysconfig tabnanny tarfile tempfile textwrap "
    "threading timeit token tokenize tomllib._parser trace traceback tracemalloc types "
    "typing unittest.case urllib.parse urllib.request uuid warnings wave weakref webbrowser "
    "xml.dom.minidom zipapp zipfile zipimport"
).split()


def is_heldout(corpus: str, doc_name: str) -> bool:
    """The fixed split rule: True iff the document belongs to ``heldout``."""
    digest = hashlib.sha256(f"{corpus}/{doc_name}".encode("utf-8")).hexdigest()
    return int(digest[:16], 16) % HELDOUT_MODULUS == 0


def _select_split(corpus: str, named_docs: list[tuple[str, str]], split: str):
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r} for corpus {corpus!r}; expected one of {SPLITS}")
    if split == "all":
        return named_docs
    want_heldout = split == "heldout"
    return [(n, d) for n, d in named_docs if is_heldout(corpus, n) == want_heldout]


def _python_docs() -> list[tuple[str, str]]:
    from pydoc_data.topics import topics

    return [(name, topics[name]) for name in sorted(topics)]


def _module_source_path(stdlib: str, module: str) -> str | None:
    base = os.path.join(stdlib, *module.split("."))
    for candidate in (base + ".py", os.path.join(base, "__init__.py")):
        if os.path.isfile(candidate):
            return candidate
    return None


def _read_python_source(path: str) -> str:
    with open(path, "rb") as f:
        raw = f.read()
    encoding, _ = tokenize.detect_encoding(io.BytesIO(raw).readline)
    try:
        return raw.decode(encoding)
    except UnicodeDecodeError as e:
        raise ValueError(f"{path}: not valid {encoding} at byte {e.start}") from e


def _python_code() -> list[tuple[str, str]]:
    stdlib = sysconfig.get_paths()["stdlib"]
    docs, missing = [], []
    for module in CODE_MODULES:
        path = _module_source_path(stdlib, module)
        if path is None:
            missing.append(module)
        else:
            docs.append((module, _read_python_source(path)))
    if not docs:
        raise FileNotFoundError(
            f"python-code: none of the {len(CODE_MODULES)} listed standard-library modules "
            f"has a .py source under {stdlib!r} (is this a source-less Python install?)"
        )
    if missing:
        warnings.warn(
            f"python-code: {len(missing)} listed module(s) not found under {stdlib!r} and "
            f"skipped: {', '.join(missing)}",
            UserWarning,
            stacklevel=3,
        )
    return docs


def load_embedded(name: str, split: str) -> list[tuple[str, str]]:
    """(document name, text) pairs of embedded corpus ``name``, split ``split``."""
    if name == "python-docs":
        named = _python_docs()
    elif name == "python-code":
        named = _python_code()
    else:
        raise ValueError(f"unknown embedded corpus {name!r}; expected one of {EMBEDDED_CORPORA}")
    return _select_split(name, named, split)
