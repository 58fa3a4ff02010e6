"""The batches stage: one ``[B, L]`` batch type for evaluation and training.

Data flow: text -> tokens -> windows -> **batches** -> model -> ... Evaluation batches come
from ``rce_jax.data.packing`` (packed rolling windows), training batches from
``rce_jax.train.data.TrainStream`` (rows of the training token stream); both are a
:class:`Batch`, and ``rce_jax.sharding.shard_batch`` places its model inputs
(:data:`MODEL_INPUTS`, :meth:`Batch.model_inputs`) on the mesh. Both steps read the same
names: the model gets ``input_ids``, ``segment_ids`` and ``positions``; the token statistics
(evaluation) and the proxy loss (training) are taken over the targets in ``score_mask``.
"""

from __future__ import annotations

import dataclasses

import numpy as np

MODEL_INPUTS = ("input_ids", "target_ids", "score_mask", "segment_ids", "positions")
_DTYPES = {"input_ids": np.int32, "target_ids": np.int32, "score_mask": np.bool_,
           "segment_ids": np.int32, "positions": np.int32, "doc_ids": np.int32,
           "target_index": np.int32}


def restarting_positions(segment_ids_BxL: np.ndarray) -> np.ndarray:
    """int32 positions that restart at 0 wherever the segment id changes along a row (the
    convention of ``rce_jax.models.attention.segment_positions``, computed on the host)."""
    seg = np.asarray(segment_ids_BxL)
    if seg.ndim != 2:
        raise ValueError(f"segment ids must be [B, L], got shape {seg.shape}")
    B, L = seg.shape
    idx = np.broadcast_to(np.arange(L, dtype=np.int32), (B, L))
    starts = np.ones((B, L), bool)
    starts[:, 1:] = seg[:, 1:] != seg[:, :-1]
    return (idx - np.maximum.accumulate(np.where(starts, idx, 0), axis=1)).astype(np.int32)


@dataclasses.dataclass(frozen=True, eq=False)
class Batch:
    """One ``[B, L]`` batch: the model inputs (:data:`MODEL_INPUTS`) plus host-side bookkeeping.

    Attributes:
      index: the batch number (evaluation: the plan's batch index; training: the step).
      input_ids, target_ids: int32; ``target_ids[r, t]`` follows ``input_ids[r, t]``.
      score_mask: bool, the targets that are scored: evaluation's statistics and training's
        loss are over exactly these.
      segment_ids: int32; attention never crosses a change of segment id (evaluation: 0 for
        padding, 1.. per window within a row; training: 1.. per document within a row).
      positions: int32, restarting at 0 in every segment.
      doc_ids: int32, the document of each position's input (-1 for padding). Evaluation:
        the document's index in its corpus; training: its index among the non-empty documents
        of all training corpora, in order.
      target_index: int32, index within its document's tokens of each position's target
        (-1 for padding; training: -1 where the target is not scored, i.e. lies in the next
        document; a document's closing EOS has index = its token count).
    """

    index: int
    input_ids: np.ndarray
    target_ids: np.ndarray
    score_mask: np.ndarray
    segment_ids: np.ndarray
    positions: np.ndarray
    doc_ids: np.ndarray
    target_index: np.ndarray

    def __post_init__(self):
        shape = self.input_ids.shape
        if len(shape) != 2:
            raise ValueError(f"a batch's arrays must be [B, L]; input_ids has shape {shape}")
        for name, dtype in _DTYPES.items():
            x = getattr(self, name)
            if x.shape != shape or x.dtype != dtype:
                raise ValueError(f"batch field {name} is {x.dtype}{list(x.shape)}, expected "
                                 f"{np.dtype(dtype)}{list(shape)}")

    @property
    def shape(self) -> tuple[int, int]:
        return self.input_ids.shape

    @property
    def num_scored(self) -> int:
        return int(self.score_mask.sum())

    def model_inputs(self) -> dict[str, np.ndarray]:
        """The arrays the compiled steps take, by the names of :data:`MODEL_INPUTS`."""
        return {name: getattr(self, name) for name in MODEL_INPUTS}
