"""Pack rolling windows into fixed-shape ``[B, L]`` batches (``rce_jax.data.batch.Batch``), resumably.

Packing modes (both deterministic):

* ``"none"``: one window per row, in window order, right-padded.
* ``"first_fit"``: windows in corpus order, each into the lowest-numbered row
  that still has room for it (a new row when none has). Full-length windows
  always get a row of their own; short windows (documents shorter than ``L``)
  share rows. Attention must not cross segments, so packing changes no number.

Row layout: a window of length ``n`` placed at offset ``o`` of row ``r`` fills
``[o, o + n)`` with its inputs and targets, segment id ``j`` (1, 2, ... in
order of placement within the row), positions ``0 .. n-1``, and scores its last
``num_scored`` positions. Padding has segment id 0, token 0, no score.

Batch ``k`` holds rows ``[k B, (k + 1) B)``; the last batch is filled up with
empty (all-padding) rows. :meth:`BatchPlan.iter_batches` with ``start_batch``
starts at batch ``start_batch`` without building the ones before it, so an
evaluation resumes from a saved batch index. Multi-host: every process builds
the same global batch and ``rce_jax.sharding.shard_batch`` places the rows each
process's devices hold.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator

import numpy as np

from rce_jax.data.batch import Batch
from rce_jax.data.metrics import TextMetrics
from rce_jax.data.tokenize import TokenizedCorpus
from rce_jax.data.windows import Windows, make_windows, window_tokens

PACKING_MODES = ("none", "first_fit")


def pack_windows(windows: Windows, mode: str = "first_fit") -> tuple[np.ndarray, np.ndarray, int]:
    """``(row, offset, num_rows)``: where each window goes (int64 ``[W]`` each)."""
    num = len(windows)
    if mode == "none":
        return np.arange(num, dtype=np.int64), np.zeros(num, np.int64), num
    if mode != "first_fit":
        raise ValueError(f"unknown packing mode {mode!r}; expected one of {PACKING_MODES}")
    cap = windows.seq_len
    size = 1
    while size < max(num, 1):
        size *= 2
    # Max segment tree over the free space of rows 0..size-1 (unopened rows are empty).
    tree = [cap] * (2 * size)  # a list: scalar access is much faster than on an ndarray
    row, offset = [0] * num, [0] * num
    num_rows = 0
    for w, need in enumerate(windows.length.tolist()):
        if need == cap:  # only an unopened row has room for a full window
            node = size + num_rows
        else:
            node = 1
            while node < size:
                node = 2 * node if tree[2 * node] >= need else 2 * node + 1
        r = node - size
        row[w], offset[w] = r, cap - tree[node]
        num_rows = max(num_rows, r + 1)
        tree[node] -= need
        node //= 2
        while node:
            tree[node] = max(tree[2 * node], tree[2 * node + 1])
            node //= 2
    return np.array(row, np.int64), np.array(offset, np.int64), num_rows


@dataclasses.dataclass(frozen=True, eq=False)
class BatchPlan:
    """The numbered batches of one evaluation: windows, their rows, and word/byte totals."""

    tokenized: TokenizedCorpus
    windows: Windows
    batch_size: int
    packing: str
    window_row: np.ndarray
    window_offset: np.ndarray
    num_rows: int
    row_windows: np.ndarray  # window indices sorted by (row, offset)
    row_ptr: np.ndarray  # row r's windows are row_windows[row_ptr[r]:row_ptr[r+1]]

    @property
    def seq_len(self) -> int:
        return self.windows.seq_len

    @property
    def num_batches(self) -> int:
        return -(-self.num_rows // self.batch_size)

    @property
    def num_scored_tokens(self) -> int:
        return self.windows.num_scored_tokens

    @property
    def num_words(self) -> int:
        return int(self.tokenized.num_words[:self.windows.num_docs].sum())

    @property
    def num_bytes(self) -> int:
        return int(self.tokenized.num_bytes[:self.windows.num_docs].sum())

    def text_metrics(self, sum_logprob: float) -> TextMetrics:
        """Word/byte perplexities of this plan's documents from their summed log-likelihood."""
        return TextMetrics(float(sum_logprob), self.num_scored_tokens, self.num_words, self.num_bytes)

    def batch(self, index: int) -> Batch:
        """Batch ``index`` (``0 <= index < num_batches``)."""
        if not 0 <= index < self.num_batches:
            raise IndexError(f"batch {index} out of range [0, {self.num_batches})")
        B, L = self.batch_size, self.seq_len
        out = {name: np.zeros((B, L), np.int32) for name in ("input_ids", "target_ids", "segment_ids", "positions")}
        out["score_mask"] = np.zeros((B, L), bool)
        out["doc_ids"] = np.full((B, L), -1, np.int32)
        out["target_index"] = np.full((B, L), -1, np.int32)
        w = self.windows
        for b in range(B):
            r = index * B + b
            if r >= self.num_rows:
                break
            for seg, wi in enumerate(self.row_windows[self.row_ptr[r]:self.row_ptr[r + 1]], start=1):
                d, st, n, m = int(w.doc[wi]), int(w.start[wi]), int(w.length[wi]), int(w.num_scored[wi])
                o = int(self.window_offset[wi])
                inputs, targets = window_tokens(self.tokenized, d, st, n)
                out["input_ids"][b, o:o + n] = inputs
                out["target_ids"][b, o:o + n] = targets
                out["score_mask"][b, o + n - m:o + n] = True
                out["segment_ids"][b, o:o + n] = seg
                out["positions"][b, o:o + n] = np.arange(n)
                out["doc_ids"][b, o:o + n] = d
                out["target_index"][b, o:o + n] = np.arange(st, st + n)
        return Batch(index=index, **out)

    def iter_batches(self, start_batch: int = 0) -> Iterator[Batch]:
        """Batches ``start_batch, start_batch + 1, ...``; the skipped ones are never built."""
        if not 0 <= start_batch <= self.num_batches:
            raise ValueError(f"start_batch {start_batch} out of range [0, {self.num_batches}]")
        for index in range(start_batch, self.num_batches):
            yield self.batch(index)


def plan_batches(
    tokenized: TokenizedCorpus,
    *,
    seq_len: int,
    batch_size: int,
    packing: str = "first_fit",
    max_tokens: int | None = None,
) -> BatchPlan:
    """Windows of ``tokenized`` (context ``seq_len``), packed into batches of ``batch_size`` rows."""
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
    if packing not in PACKING_MODES:
        raise ValueError(f"unknown packing mode {packing!r}; expected one of {PACKING_MODES}")
    windows = make_windows(tokenized, seq_len, max_tokens=max_tokens)
    row, offset, num_rows = pack_windows(windows, packing)
    order = np.lexsort((offset, row))
    row_ptr = np.searchsorted(row[order], np.arange(num_rows + 1), side="left")
    return BatchPlan(
        tokenized=tokenized, windows=windows, batch_size=int(batch_size), packing=packing,
        window_row=row, window_offset=offset, num_rows=num_rows,
        row_windows=order, row_ptr=row_ptr,
    )
