"""Training batches: the tokenized training split as one stream, cut into ``[B, L]`` rows.

Stream: every document of every training corpus, in corpus order, as ``[prefix] + tokens +
[EOS]`` (``prefix``: BOS, as in evaluation, docs/design.md#6-windows; a tokenizer without BOS uses EOS
and then only one EOS separates documents). Each stream position carries its document's index.

Batches are ``rce_jax.data.Batch``, as in evaluation. A row reads ``L + 1`` consecutive stream
tokens (inputs ``[0, L)``, targets ``[1, L + 1)``); attention stays within a document (the
model gets the document index as segment id; positions, computed here on the host, restart at 0
where a document starts in the row, as in evaluation windows) and a target is scored only if it
lies in the same document as its input, so the step from one document's EOS to the next
document's prefix is never trained on.

Order: the stream is split into ``C = (S - L) // L`` chunks of ``L`` tokens starting at a
per-epoch offset ``o_e`` in ``[0, L)``; epoch ``e`` visits its chunks in a permutation. Global
row ``r`` is chunk ``perm_e[r % C]`` of epoch ``e = r // C``; step ``k`` takes rows
``[k B, (k + 1) B)``. ``o_e`` and ``perm_e`` are drawn from ``numpy.random.default_rng([seed,
e])``, so the batch of step ``k`` is a pure function of ``(seed, k)``: a resumed run sees
exactly the batches the uninterrupted one would, and no state needs saving.
"""

from __future__ import annotations

import numpy as np

from ..data import Batch, as_corpus, prefix_token_id, restarting_positions, tokenize_corpus

_EPOCH_TAG = 0x7EA1  # separates the data stream's generators from other uses of the seed


class TrainStream:
    """The training token stream of a run and its deterministic batches."""

    def __init__(self, tokens: np.ndarray, doc_ids: np.ndarray, *, seq_len: int, seed: int):
        self.tokens = np.asarray(tokens, np.int32)
        self.doc_ids = np.asarray(doc_ids, np.int32)
        if self.tokens.shape != self.doc_ids.shape or self.tokens.ndim != 1:
            raise ValueError("tokens and doc_ids must be 1-D arrays of equal length")
        if (np.diff(self.doc_ids) < 0).any():
            raise ValueError("doc_ids must be non-decreasing (each document one run of the stream)")
        self.seq_len = int(seq_len)
        self.seed = int(seed)
        self.num_chunks = (len(self.tokens) - self.seq_len) // self.seq_len
        self._epochs = {}  # the last two epochs' (offset, permutation), per stream
        if self.num_chunks < 1:
            raise ValueError(f"the training data has {len(self.tokens)} tokens, too few for even "
                             f"one row of context length {self.seq_len} (need at least {2 * self.seq_len})")

    @classmethod
    def from_corpora(cls, corpora, tokenizer, *, seq_len: int, seed: int, text_field: str = "text",
                     cache_dir=None) -> TrainStream:
        """``corpora``: specs or already loaded ``Corpus`` objects."""
        prefix = prefix_token_id(tokenizer)  # documents are separated by it
        eos = tokenizer.eos_token_id
        extra = 2 if eos is not None and eos != prefix else 1  # prefix (+ EOS) per document
        token_parts, doc_parts, n_docs = [], [], 0
        corpora = [as_corpus(c, text_field=text_field) for c in corpora]
        for corpus in corpora:
            tc = tokenize_corpus(corpus, tokenizer, cache_dir=cache_dir)
            lengths = tc.doc_lengths
            kept = lengths > 0  # empty documents contribute nothing
            n = lengths[kept]
            new_len = n + extra
            new_start = np.concatenate([[0], np.cumsum(new_len)[:-1]]).astype(np.int64)
            out = np.empty(int(new_len.sum()), np.int32)
            out[new_start] = prefix
            if extra == 2:
                out[new_start + n + 1] = eos
            doc_of_token = np.repeat(np.arange(len(n)), n)  # every token lies in a kept document
            within = np.arange(tc.num_tokens) - np.repeat(tc.offsets[:-1][kept], n)
            out[new_start[doc_of_token] + 1 + within] = tc.tokens
            token_parts.append(out)
            doc_parts.append(np.repeat(np.arange(n_docs, n_docs + len(n), dtype=np.int32), new_len))
            n_docs += len(n)
        if not n_docs:
            raise ValueError(f"the training corpora {[c.name for c in corpora]} hold no tokens")
        return cls(np.concatenate(token_parts), np.concatenate(doc_parts), seq_len=seq_len, seed=seed)

    @property
    def num_tokens(self) -> int:
        return len(self.tokens)

    def _epoch(self, epoch: int) -> tuple[int, np.ndarray]:
        if epoch not in self._epochs:
            rng = np.random.default_rng([self.seed, _EPOCH_TAG, epoch])
            if len(self._epochs) >= 2:
                self._epochs.pop(min(self._epochs))
            self._epochs[epoch] = int(rng.integers(0, self.seq_len)), rng.permutation(self.num_chunks)
        return self._epochs[epoch]

    def row_starts(self, step: int, batch_size: int) -> np.ndarray:
        """Stream offsets of the ``batch_size`` rows of ``step``."""
        if step < 0:
            raise ValueError(f"step must be >= 0, got {step}")
        rows = np.arange(step * batch_size, (step + 1) * batch_size, dtype=np.int64)
        starts = np.empty(batch_size, np.int64)
        for e in np.unique(rows // self.num_chunks):
            sel = rows // self.num_chunks == e
            offset, perm = self._epoch(int(e))
            starts[sel] = offset + perm[rows[sel] % self.num_chunks] * self.seq_len
        return starts

    def batch(self, step: int, batch_size: int) -> Batch:
        """The global batch of ``step`` (``rce_jax.data.Batch``, ``[batch_size, L]``, index
        ``step``): a target is scored iff it lies in its input's document; positions restart
        at 0 where a document starts in the row (and at the row's start)."""
        L = self.seq_len
        idx = self.row_starts(step, batch_size)[:, None] + np.arange(L + 1)[None, :]
        toks, docs = self.tokens[idx], self.doc_ids[idx]
        seg = (docs[:, :L] - docs[:, :1] + 1).astype(np.int32)
        scored = docs[:, 1:] == docs[:, :L]
        positions = restarting_positions(seg)
        # A target's index in its document's tokens is its input's stream offset from the
        # document's prefix: the position, plus (in a row's first segment) how far into its
        # document the row starts.
        starts = idx[:, 0]
        into_doc = starts - np.searchsorted(self.doc_ids, docs[:, 0], side="left")
        target_index = positions + np.where(seg == 1, into_doc[:, None], 0)
        return Batch(index=int(step), input_ids=toks[:, :L], target_ids=toks[:, 1:], score_mask=scored,
                     segment_ids=seg, positions=positions, doc_ids=docs[:, :L],
                     target_index=np.where(scored, target_index, -1).astype(np.int32))
