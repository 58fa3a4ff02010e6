"""Checkpoints (orbax ``CheckpointManager``) and the metrics log (JSONL) that must agree with them.

A run saves its train state every ``save_every`` steps and at the last step, keeping the newest
``keep``; orbax writes each checkpoint under a temporary name and commits it by renaming, so a
run killed mid-save leaves the previous checkpoint as the latest. On restart the latest
checkpoint is restored straight into the state's shardings and the metrics log is cut back to
the rows of the steps it covers (a row after it describes steps that will be recomputed), so
the log of an interrupted and resumed run equals that of an uninterrupted one row for row
(wall-clock fields excepted: ``tokens_per_s`` and ``elapsed_s``).
"""

from __future__ import annotations

import json
from pathlib import Path

import jax
import orbax.checkpoint as ocp

from ..io import write_text

class Checkpoints:
    """The run's orbax checkpoints: ``state`` (the train-state pytree) and ``meta`` (JSON)."""

    def __init__(self, folder, *, keep: int):
        self.folder = Path(folder).absolute()
        options = ocp.CheckpointManagerOptions(max_to_keep=keep, create=True)
        self.manager = ocp.CheckpointManager(self.folder, options=options)

    def latest_step(self) -> int | None:
        return self.manager.latest_step()

    def save(self, step: int, state, meta: dict) -> None:
        """Start saving (asynchronously); the commit happens when the write completes."""
        self.manager.save(step, args=ocp.args.Composite(
            state=ocp.args.StandardSave(state), meta=ocp.args.JsonSave(meta)), force=True)

    def restore(self, step: int, like_state):
        """``(state, meta)`` of checkpoint ``step``, placed like ``like_state`` (shapes, dtypes
        and shardings of its arrays)."""
        abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, like_state)
        out = self.manager.restore(step, args=ocp.args.Composite(
            state=ocp.args.StandardRestore(abstract), meta=ocp.args.JsonRestore()))
        return out.state, out.meta

    def close(self) -> None:
        self.manager.wait_until_finished()
        self.manager.close()


class MetricsLog:
    """Rows of ``metrics.jsonl``: one JSON object per line, each with an integer ``step``."""

    def __init__(self, path, *, writer: bool = True):
        self.path = Path(path)
        self.writer = writer

    def rows(self) -> list[dict]:
        """The complete rows (a line cut short by a kill is dropped)."""
        if not self.path.exists():
            return []
        out = []
        for line in self.path.read_text(encoding="utf-8").splitlines():
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(row, dict) and isinstance(row.get("step"), int):
                out.append(row)
        return out

    def truncate_after(self, step: int) -> None:
        """Keep only rows of steps ``<= step`` (rewritten atomically)."""
        if not self.writer:
            return
        keep = [r for r in self.rows() if r["step"] <= step]
        write_text(self.path, "".join(json.dumps(r) + "\n" for r in keep))

    def append(self, row: dict) -> None:
        if not self.writer:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(json.dumps(row) + "\n")
            f.flush()
