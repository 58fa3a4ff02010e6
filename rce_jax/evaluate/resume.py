"""Resumable evaluation state: RankStats (and score profiles) after the first k batches.

A partial run lives in a folder beside its final result. Each save writes a new numbered
snapshot file, then ``state.json`` naming it (the commit point, written atomically), then
removes older snapshots: a run killed at any moment leaves a state that names a complete
snapshot, and the restarted run continues from its batch index with exactly its counts.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from ..bootstrap import BootstrapStats
from ..io import write_json
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

    def discard(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)
