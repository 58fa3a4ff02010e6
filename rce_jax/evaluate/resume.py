"""Resumable evaluation state: RankStats (and score profiles) after the first k batches.

A partial run lives in a folder beside its final result. Each save writes a new numbered
snapshot file, then ``state.json`` naming it (the commit point, written atomically), then
removes older snapshots: a run killed at any moment leaves a state that names a complete
snapshot, and the restarted run continues from its batch index with exactly its counts.

A signal (SIGTERM, SIGINT: ``rce_jax.preempt``) snapshots the batches folded so far like a
scheduled save and stops the run; the last save, of every batch, comes before the result file is
written, so a result that cannot be written (full disk, folder gone) loses no work: the rerun of
the same command finds all batches done and only writes the result.
"""

from __future__ import annotations

import contextlib
import json
import shutil
from pathlib import Path

from ..bootstrap import BootstrapStats
from ..io import OutputError, describe_os_error, write_json
from ..preempt import Preempted, requested, signal_name
from ..stats import RankStats
from .profile import ProfileStats

STATE = "state.json"


class EvalState:
    """The statistics of the batches before ``next_batch``, under the given settings."""

    def __init__(self, folder, settings: dict, stats: RankStats, profile: ProfileStats | None,
                 next_batch: int = 0, bootstrap: BootstrapStats | None = None):
        self.folder = Path(folder)
        self.settings = settings
        self.stats = stats
        self.profile = profile
        self.next_batch = next_batch
        self.bootstrap = bootstrap

    @classmethod
    def open(cls, folder, settings: dict, fresh_stats: RankStats,
             fresh_profile: ProfileStats | None,
             fresh_bootstrap: BootstrapStats | None = None) -> EvalState:
        """Resume from ``folder`` if it holds a state taken under ``settings``, else start fresh.

        A state from other settings (another batch size, dtype, corpus, ...) would not continue
        the same sequence of batches: it is discarded, with the reason printed.
        """
        folder = Path(folder)
        state_file = folder / STATE
        if state_file.exists():
            try:
                state = json.loads(state_file.read_text())
                if state.get("settings") != settings:
                    changed = sorted(k for k in set(settings) | set(state.get("settings", {}))
                                     if settings.get(k) != state.get("settings", {}).get(k))
                    print(f"[rce-jax eval] {folder}: earlier partial run used other settings "
                          f"({', '.join(changed)}); starting over")
                else:
                    stats = RankStats.load(folder / state["stats_file"])
                    profile = None
                    if fresh_profile is not None:
                        profile = ProfileStats.load(folder / state["profile_file"], fresh_profile.top_k)
                    bootstrap = None
                    if fresh_bootstrap is not None:
                        bootstrap = BootstrapStats.load(folder / state["bootstrap_file"])
                    return cls(folder, settings, stats, profile, int(state["next_batch"]), bootstrap)
            except (OSError, ValueError, KeyError) as e:
                print(f"[rce-jax eval] {folder}: unreadable partial state ({e}); starting over")
            shutil.rmtree(folder, ignore_errors=True)
        return cls(folder, settings, fresh_stats, fresh_profile, 0, fresh_bootstrap)

    def save(self, next_batch: int) -> None:
        """Snapshot the statistics of batches ``[0, next_batch)`` and commit it."""
        self.folder.mkdir(parents=True, exist_ok=True)
        stats_file = f"stats-{next_batch:08d}.npz"
        self.stats.save(self.folder / stats_file)
        state = {"next_batch": next_batch, "stats_file": stats_file, "settings": self.settings}
        if self.profile is not None:
            state["profile_file"] = f"profile-{next_batch:08d}.npz"
            self.profile.save(self.folder / state["profile_file"])
        if self.bootstrap is not None:
            state["bootstrap_file"] = f"bootstrap-{next_batch:08d}.npz"
            self.bootstrap.save(self.folder / state["bootstrap_file"])
        write_json(self.folder / STATE, state)
        self.next_batch = next_batch
        keep = {STATE, stats_file, state.get("profile_file"), state.get("bootstrap_file")}
        for old in self.folder.iterdir():
            if old.name not in keep and not old.name.startswith("."):
                old.unlink(missing_ok=True)

    def stop_if_preempted(self, next_batch: int, total: int, writer: bool) -> None:
        """After batch ``next_batch - 1``: if a signal asked to stop (any host), snapshot batches
        ``[0, next_batch)`` (the writing host) and raise Preempted."""
        signum = requested()
        if not signum:
            return
        if writer:
            self.save(next_batch)
        raise Preempted(signum, f"{signal_name(signum)}: saved the statistics of {next_batch} of "
                        f"{total} batches in {self.folder}; rerun the same command to resume")

    def finish(self, out_file, write_outputs, total: int) -> None:
        """Snapshot all ``total`` batches, call ``write_outputs()`` (which writes the result
        ``out_file`` and whatever belongs beside it), then remove the snapshot. If the outputs
        cannot be written, the error says where the statistics are kept and how to finish."""
        try:
            self.save(total)
            kept = f"the statistics of all {total} batches are kept in {self.folder}"
        except OSError:
            kept = (f"the statistics of the first {self.next_batch} of {total} batches are kept in "
                    f"{self.folder}" if self.next_batch else "no snapshot could be kept either")
        try:
            write_outputs()
        except OSError as e:
            raise OutputError(f"cannot write the result {out_file} ({describe_os_error(e)}); {kept}: "
                              "make room (or fix --out) and rerun the same command to finish") from e
        self.discard()

    def discard(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)
        with contextlib.suppress(OSError):  # the shared .partial/ folder, once no run uses it
            self.folder.parent.rmdir()
