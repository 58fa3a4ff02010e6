"""Tokenize a corpus with the model's own tokenizer, cached on disk.

Each document is encoded on its own. By default with ``add_special_tokens=False``
(the tokenizer adds no BOS/EOS; the one prefix token of docs/design.md#6-windows is added by
the windows, see :func:`prefix_token_id`): lm-evaluation-harness before 0.4.9.2, or
with ``add_bos_token=False``. With ``add_special_tokens=True`` each document is
encoded with the tokenizer's own special tokens (a Llama tokenizer's ``<s>``, ...),
which are then scored like any other token after the prefix token, as
lm-evaluation-harness >= 0.4.9.2 does (a document that already starts with the
prefix token's text is encoded without them, as there). docs/harness.md has both. The result is one flat int32 token
array plus document offsets, and per document the word and UTF-8 byte counts
of the original text (:mod:`rce_jax.data.metrics`).

Cache: one ``.npz`` file per (tokenizer, corpus) pair, named by a key that
hashes the cache format, :func:`tokenizer_fingerprint` and
:attr:`Corpus.fingerprint`. It is written to a temporary name and renamed
(``os.replace``). On load its stored key and a SHA-256 of its arrays are
checked; a file that fails any check (truncated, bit-flipped, wrong key,
inconsistent arrays) is reported with a warning and rebuilt, never trusted.

Cache directory: ``cache_dir=`` if given; else ``$RCE_JAX_CACHE/tokens``; else
``$XDG_CACHE_HOME/rce_jax/tokens``; else ``~/.cache/rce_jax/tokens``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from rce_jax.data.corpora import Corpus
from rce_jax.io import atomic_path
from rce_jax.data.metrics import count_bytes, count_words

CACHE_FORMAT = "rce-jax-tokens-v1"
CACHE_ENV = "RCE_JAX_CACHE"
# init_kwargs that say where a tokenizer was loaded from, not how it encodes.
_LOCATION_KWARGS = frozenset({
    "name_or_path", "vocab_file", "merges_file", "tokenizer_file", "is_local",
    "local_files_only", "cache_dir", "model_max_length", "_commit_hash", "revision",
    "token", "trust_remote_code", "subfolder",
})
_ARRAYS = ("tokens", "offsets", "num_words", "num_bytes")


def default_cache_dir() -> Path:
    """``$RCE_JAX_CACHE/tokens``, else ``$XDG_CACHE_HOME/rce_jax/tokens``, else ``~/.cache/...``."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]).expanduser() / "tokens"
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "rce_jax" / "tokens"


def prefix_token_id(tokenizer) -> int:
    """The token put in front of every document: BOS if the tokenizer has one, else EOS."""
    for attr in ("bos_token_id", "eos_token_id"):
        token = getattr(tokenizer, attr, None)
        if token is not None:
            return int(token)
    raise ValueError(
        f"tokenizer {type(tokenizer).__name__} has neither a BOS nor an EOS token, so there is "
        "no prefix token for the first scored token to condition on (set bos_token or eos_token)"
    )


def tokenizer_fingerprint(tokenizer) -> str:
    """SHA-256 over what decides the encoding: class, vocabulary/model, special tokens, options.

    For a ``tokenizers``-backed tokenizer that is its full serialised state (minus
    per-call truncation/padding); otherwise its vocabulary and SentencePiece
    model. Loading the same tokenizer from another folder gives the same value.
    """
    cls = type(tokenizer)
    parts: dict = {"class": f"{cls.__module__}.{cls.__qualname__}"}
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is not None:
        state = json.loads(backend.to_str())
        state.pop("truncation", None)  # per-call settings, left behind by earlier calls
        state.pop("padding", None)
        blob = json.dumps(state, ensure_ascii=True, separators=(",", ":"))  # the backend's own order
        parts["backend"] = hashlib.sha256(blob.encode("ascii")).hexdigest()
    else:
        parts["vocab"] = sorted(tokenizer.get_vocab().items(), key=lambda kv: (kv[1], kv[0]))
        sp_model = getattr(tokenizer, "sp_model", None)
        if sp_model is not None:
            parts["sp_model"] = hashlib.sha256(sp_model.serialized_model_proto()).hexdigest()
    parts["added"] = sorted((str(k), int(v)) for k, v in tokenizer.get_added_vocab().items())
    parts["bos_eos"] = [getattr(tokenizer, "bos_token_id", None), getattr(tokenizer, "eos_token_id", None)]
    options = {}
    for key, value in getattr(tokenizer, "init_kwargs", {}).items():
        value = getattr(value, "content", value)  # an AddedToken counts by its text
        if key not in _LOCATION_KWARGS and isinstance(value, (bool, int, float, str, type(None))):
            options[key] = value
    parts["init_kwargs"] = options
    blob = json.dumps(parts, sort_keys=True, ensure_ascii=True, default=str)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


@dataclasses.dataclass(frozen=True, eq=False)
class TokenizedCorpus:
    """A corpus as one flat token array; document ``i`` is ``tokens[offsets[i]:offsets[i+1]]``.

    Attributes:
      name: the corpus name.
      corpus_fingerprint, tokenizer_fingerprint: what it was made from.
      prefix_token: the token the windows put in front of every document.
      tokens: int32 ``[num_tokens]``.
      offsets: int64 ``[num_docs + 1]``, from 0 to ``num_tokens``, non-decreasing.
      num_words, num_bytes: int64 ``[num_docs]``, of the original texts.
    """

    name: str
    corpus_fingerprint: str
    tokenizer_fingerprint: str
    prefix_token: int
    tokens: np.ndarray
    offsets: np.ndarray
    num_words: np.ndarray
    num_bytes: np.ndarray
    tokenization: str = "plain"

    def __post_init__(self):
        problem = _check_arrays(self.tokens, self.offsets, self.num_words, self.num_bytes)
        if problem:
            raise ValueError(f"tokenized corpus {self.name!r}: {problem}")
        if not 0 <= self.prefix_token < 2**31:
            raise ValueError(f"prefix_token {self.prefix_token} is not a valid int32 token id")

    @property
    def num_docs(self) -> int:
        return len(self.offsets) - 1

    @property
    def num_tokens(self) -> int:
        return int(self.offsets[-1])

    @property
    def doc_lengths(self) -> np.ndarray:
        return np.diff(self.offsets)

    def doc_tokens(self, i: int) -> np.ndarray:
        return self.tokens[self.offsets[i]:self.offsets[i + 1]]

    @classmethod
    def from_token_lists(
        cls, token_lists: Sequence[Sequence[int]], prefix_token: int, *, name: str = "tokens",
        num_words: Sequence[int] | None = None, num_bytes: Sequence[int] | None = None,
    ) -> "TokenizedCorpus":
        """Build from in-memory token lists (word/byte counts default to 0: unknown)."""
        lengths = np.array([len(t) for t in token_lists], dtype=np.int64)
        offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
        flat = [np.asarray(t, dtype=np.int64).reshape(-1) for t in token_lists]
        tokens = _as_int32_tokens(np.concatenate(flat) if flat else np.zeros(0, np.int64), name)
        zeros = np.zeros(len(lengths), np.int64)
        words = zeros if num_words is None else np.asarray(num_words, np.int64)
        nbytes = zeros if num_bytes is None else np.asarray(num_bytes, np.int64)
        digest = hashlib.sha256(tokens.tobytes() + offsets.tobytes()).hexdigest()
        return cls(name, digest, "in-memory", int(prefix_token), tokens, offsets, words, nbytes)


def _as_int32_tokens(ids: np.ndarray, where: str) -> np.ndarray:
    if ids.size and (ids.min() < 0 or ids.max() >= 2**31):
        raise ValueError(f"{where}: token ids must lie in [0, 2**31), got [{ids.min()}, {ids.max()}]")
    return ids.astype(np.int32)


def _check_arrays(tokens, offsets, num_words, num_bytes) -> str | None:
    """None if the arrays form a valid tokenized corpus, else what is wrong."""
    want = {"tokens": (tokens, np.int32), "offsets": (offsets, np.int64),
            "num_words": (num_words, np.int64), "num_bytes": (num_bytes, np.int64)}
    for key, (arr, dtype) in want.items():
        if not isinstance(arr, np.ndarray) or arr.ndim != 1 or arr.dtype != dtype:
            return f"{key} must be a 1-D {np.dtype(dtype).name} array"
    if len(offsets) < 2 or offsets[0] != 0 or offsets[-1] != len(tokens):
        return f"offsets must run from 0 to len(tokens)={len(tokens)} over at least one document"
    if np.any(np.diff(offsets) < 0):
        return "offsets must be non-decreasing"
    if len(num_words) != len(offsets) - 1 or len(num_bytes) != len(offsets) - 1:
        return "num_words and num_bytes need one entry per document"
    if tokens.size and tokens.min() < 0:
        return "token ids must be non-negative"
    if np.any(num_words < 0) or np.any(num_bytes < 0):
        return "word and byte counts must be non-negative"
    return None


def _cache_key(corpus_fp: str, tokenizer_fp: str, add_special_tokens: bool = False) -> str:
    # The plain convention keeps the key it always had, so existing caches stay valid.
    special = "\0special_tokens" if add_special_tokens else ""
    return hashlib.sha256(f"{CACHE_FORMAT}\0{tokenizer_fp}\0{corpus_fp}{special}".encode()).hexdigest()


def cache_path(corpus: Corpus, tokenizer, cache_dir: str | os.PathLike | None = None, *,
               add_special_tokens: bool = False) -> Path:
    """Where :func:`tokenize_corpus` keeps the tokens of ``corpus`` under ``tokenizer``."""
    key = _cache_key(corpus.fingerprint, tokenizer_fingerprint(tokenizer), add_special_tokens)
    return _cache_path(corpus, key, cache_dir)


def _cache_path(corpus: Corpus, key: str, cache_dir: str | os.PathLike | None) -> Path:
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", corpus.name).strip("._")[:64] or "corpus"
    return Path(cache_dir if cache_dir is not None else default_cache_dir()) / f"{stem}-{key[:32]}.npz"


def _digest(arrays: dict[str, np.ndarray]) -> str:
    h = hashlib.sha256()
    for key in _ARRAYS:
        h.update(key.encode())
        h.update(np.ascontiguousarray(arrays[key]).tobytes())
    return h.hexdigest()


def _save(path: Path, key: str, arrays: dict[str, np.ndarray]) -> None:
    meta = json.dumps({"format": CACHE_FORMAT, "key": key, "sha256": _digest(arrays)})
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        np.savez(f, meta=np.array(meta), **arrays)
        f.flush()
        os.fsync(f.fileno())


def _load(path: Path, key: str) -> tuple[dict[str, np.ndarray] | None, str | None]:
    """(arrays, None) for a sound cache file; (None, reason) for a corrupt one."""
    try:
        with np.load(path, allow_pickle=False) as npz:
            meta = json.loads(str(npz["meta"]))
            arrays = {k: npz[k] for k in _ARRAYS}
    except Exception as e:  # any unreadable file is a cache miss, whatever the reader raised
        return None, f"unreadable ({type(e).__name__}: {e})"
    if meta.get("format") != CACHE_FORMAT or meta.get("key") != key:
        return None, "its stored key does not match"
    problem = _check_arrays(**arrays)
    if problem:
        return None, problem
    if meta.get("sha256") != _digest(arrays):
        return None, "checksum mismatch"
    return arrays, None


def _encode_batch(tokenizer, batch: list[str], add_special_tokens: bool) -> list:
    kwargs = {"return_attention_mask": False, "return_token_type_ids": False, "verbose": False}
    if not add_special_tokens:
        return tokenizer(batch, add_special_tokens=False, **kwargs)["input_ids"]
    # lm-evaluation-harness >= 0.4.9.2: the tokenizer's own special tokens, except for a
    # document that already starts with the prefix token's text.
    prefix_text = tokenizer.decode(prefix_token_id(tokenizer))
    with_special = tokenizer(batch, add_special_tokens=True, **kwargs)["input_ids"]
    starts = [i for i, d in enumerate(batch) if d.startswith(prefix_text)]
    if starts:
        plain = tokenizer([batch[i] for i in starts], add_special_tokens=False, **kwargs)["input_ids"]
        for i, ids in zip(starts, plain):
            with_special[i] = ids
    return with_special


def _encode(corpus: Corpus, tokenizer, batch_docs: int, add_special_tokens: bool = False) -> dict[str, np.ndarray]:
    docs = corpus.documents
    pieces, lengths = [], []
    for lo in range(0, len(docs), batch_docs):
        batch = list(docs[lo:lo + batch_docs])
        ids = _encode_batch(tokenizer, batch, add_special_tokens)
        for j, doc_ids in enumerate(ids):
            arr = _as_int32_tokens(np.asarray(doc_ids, dtype=np.int64).reshape(-1),
                                   f"{corpus.name}: document {corpus.doc_names[lo + j]!r}")
            pieces.append(arr)
            lengths.append(len(arr))
    return {
        "tokens": np.concatenate(pieces).astype(np.int32, copy=False),  # pieces are int32 already
        "offsets": np.concatenate([[0], np.cumsum(lengths, dtype=np.int64)]),
        "num_words": np.array([count_words(d) for d in corpus.counted_texts], dtype=np.int64),
        "num_bytes": np.array([count_bytes(d) for d in corpus.counted_texts], dtype=np.int64),
    }


def tokenize_corpus(
    corpus: Corpus,
    tokenizer,
    *,
    cache_dir: str | os.PathLike | None = None,
    use_cache: bool = True,
    batch_docs: int = 64,
    add_special_tokens: bool = False,
) -> TokenizedCorpus:
    """Tokenize every document of ``corpus``, through the disk cache.

    Args:
      corpus: the documents.
      tokenizer: a ``transformers`` tokenizer (the model's own).
      cache_dir: cache folder (default :func:`default_cache_dir`).
      use_cache: False to neither read nor write the cache.
      batch_docs: documents per tokenizer call.
      add_special_tokens: encode with the tokenizer's own special tokens (module docstring).
    """
    prefix = prefix_token_id(tokenizer)
    tok_fp = tokenizer_fingerprint(tokenizer)
    key = _cache_key(corpus.fingerprint, tok_fp, add_special_tokens)
    path = _cache_path(corpus, key, cache_dir)
    arrays = None
    if use_cache and path.exists():
        arrays, problem = _load(path, key)
        if problem:
            warnings.warn(f"token cache {path} is corrupt ({problem}); rebuilding it", stacklevel=2)
    if arrays is None:
        arrays = _encode(corpus, tokenizer, batch_docs, add_special_tokens)
        if not len(arrays["tokens"]):
            raise ValueError(
                f"corpus {corpus.name!r}: the tokenizer ({type(tokenizer).__name__}, {len(tokenizer)} "
                "entries) produced no token for any document; is it loaded correctly?"
            )
        if use_cache:
            _save(path, key, arrays)
    return TokenizedCorpus(corpus.name, corpus.fingerprint, tok_fp, prefix, **arrays,
                           tokenization="special_tokens" if add_special_tokens else "plain")
