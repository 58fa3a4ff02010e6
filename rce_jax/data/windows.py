"""Rolling evaluation windows: docs/design.md#6-windows, lm-evaluation-harness's rolling log-likelihood.

For a document of ``T`` tokens write ``s = [prefix] + tokens`` (``n = T + 1``)
and let ``L`` be the context length. Target ``s[i]`` (``i >= 1``) is document
token ``i - 1``. A window is ``(start, length, num_scored)``: it reads
``s[start : start + length]``, its targets are ``s[start + 1 : start + length + 1]``
and only the last ``num_scored`` of them are scored.

* ``T <= L``: one window ``(0, T, T)`` (a short document is one short window).
* ``T > L``: full windows ``(k L, L, L)`` for ``k < T // L``; then, if
  ``T % L = r > 0``, one last window that slides back to read a full ``L``
  tokens of context, ``(T - L, L, r)``, i.e. ``s[n-L-1 : n-1]``, scoring only
  the ``r`` targets not scored before.

Every document token is scored exactly once, the prefix never. A document
with zero tokens has no window (it contributes no log-likelihood; its words
and bytes still count, as in the harness). These are exactly the model inputs
and scored continuations of the harness's ``get_rolling_token_windows(...,
max_seq_len=L, context_len=1)`` followed by ``make_disjoint_window``.

``max_tokens`` cuts the corpus at whole documents: documents are taken in
corpus order until the scored-token count reaches ``max_tokens``; the document
that reaches it is kept whole. So ``max_tokens <= scored < max_tokens + T_last``
(or the whole corpus, if it has fewer tokens), and word/byte metrics stay
exact because no document is cut.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from rce_jax.data.tokenize import TokenizedCorpus


def rolling_windows(num_tokens: int, seq_len: int) -> list[tuple[int, int, int]]:
    """The ``(start, length, num_scored)`` windows of one document of ``num_tokens`` tokens."""
    _check_seq_len(seq_len)
    if num_tokens < 0:
        raise ValueError(f"num_tokens must be >= 0, got {num_tokens}")
    if num_tokens == 0:
        return []
    if num_tokens <= seq_len:
        return [(0, num_tokens, num_tokens)]
    full, rest = divmod(num_tokens, seq_len)
    windows = [(k * seq_len, seq_len, seq_len) for k in range(full)]
    if rest:
        windows.append((num_tokens - seq_len, seq_len, rest))
    return windows


def _check_seq_len(seq_len: int) -> None:
    if isinstance(seq_len, bool) or not isinstance(seq_len, (int, np.integer)) or seq_len < 1:
        raise ValueError(f"seq_len must be a positive int, got {seq_len!r}")


@dataclasses.dataclass(frozen=True, eq=False)
class Windows:
    """All windows of (a document prefix of) a tokenized corpus, in corpus order.

    Attributes:
      seq_len: the context length ``L``.
      num_docs: documents covered (``< tokenized.num_docs`` when ``max_tokens`` cut).
      doc: int32 ``[W]`` document index of each window.
      start, length, num_scored: int64/int32/int32 ``[W]``, as in the module docstring.
    """

    seq_len: int
    num_docs: int
    doc: np.ndarray
    start: np.ndarray
    length: np.ndarray
    num_scored: np.ndarray

    def __len__(self) -> int:
        return len(self.doc)

    @property
    def num_scored_tokens(self) -> int:
        return int(self.num_scored.sum())


def make_windows(tokenized: TokenizedCorpus, seq_len: int, *, max_tokens: int | None = None) -> Windows:
    """The rolling windows of every document of ``tokenized`` (see the module docstring)."""
    _check_seq_len(seq_len)
    lengths = tokenized.doc_lengths
    if not lengths.any():
        raise ValueError(f"corpus {tokenized.name!r}: every document has zero tokens; nothing to score")
    num_docs = tokenized.num_docs
    if max_tokens is not None:
        if isinstance(max_tokens, bool) or not isinstance(max_tokens, (int, np.integer)) or max_tokens < 1:
            raise ValueError(f"--max-tokens must be a positive integer, got {max_tokens!r}")
        reached = np.flatnonzero(np.cumsum(lengths) >= max_tokens)
        if reached.size:
            num_docs = int(reached[0]) + 1
    lengths = lengths[:num_docs]
    per_doc = -(-lengths // seq_len)  # ceil(T / L); 0 for an empty document
    doc = np.repeat(np.arange(num_docs, dtype=np.int32), per_doc)
    first = np.concatenate([[0], np.cumsum(per_doc)[:-1]])
    k = np.arange(len(doc), dtype=np.int64) - np.repeat(first, per_doc)
    total = lengths[doc]
    length = np.minimum(seq_len, total)
    start = np.minimum(k * seq_len, total - length)
    num_scored = np.minimum(seq_len, total - k * seq_len)
    return Windows(
        seq_len=int(seq_len),
        num_docs=num_docs,
        doc=doc,
        start=start.astype(np.int64),
        length=length.astype(np.int32),
        num_scored=num_scored.astype(np.int32),
    )


def window_tokens(tokenized: TokenizedCorpus, doc: int, start: int, length: int) -> tuple[np.ndarray, np.ndarray]:
    """``(inputs, targets)`` of a window: ``s[start:start+length]`` and ``s[start+1:start+length+1]``."""
    lo = int(tokenized.offsets[doc])
    if start == 0:
        s = np.concatenate([np.array([tokenized.prefix_token], np.int32), tokenized.tokens[lo:lo + length]])
    else:
        s = tokenized.tokens[lo + start - 1:lo + start + length]
    return s[:-1], s[1:]
