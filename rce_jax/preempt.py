"""Preemption: SIGTERM (what TPU pods and cloud GPUs send) and SIGINT become a checkpoint.

Inside ``preemption_guard()`` the two signals only set a flag; the long-running loops (training
steps, evaluation batches) look at it at a point where their state is consistent, save that
state as at a scheduled checkpoint and raise ``Preempted``. The command line prints its message
in one line and exits with 128 + the signal number, the status a shell gives a process killed
by that signal, so that schedulers see the run as interrupted and rerun it; the rerun of the
same command resumes from the saved state.

On several hosts the signal may reach them at different steps: ``requested()`` agrees across
processes (any host's flag stops all of them at the same step), so every host saves the same
step of a collective checkpoint.
"""

from __future__ import annotations

import contextlib
import signal
import threading

import numpy as np

SIGNALS = (signal.SIGTERM, signal.SIGINT)


class Preempted(Exception):
    """A run stopped by a signal after saving its state; ``exit_status`` is 128 + signal."""

    def __init__(self, signum: int, message: str):
        super().__init__(message)
        self.signum = signum
        self.exit_status = 128 + signum


_received: list[int] = []  # the signal numbers seen inside the innermost active guard


def _handler(signum, frame):
    _received.append(signum)


@contextlib.contextmanager
def preemption_guard():
    """Turn SIGTERM and SIGINT into a flag for the duration of the block (main thread only;
    elsewhere, or nested, the block runs with the handlers as they are)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {s: signal.getsignal(s) for s in SIGNALS}
    outer = list(_received)
    _received.clear()
    for s in SIGNALS:
        signal.signal(s, _handler)
    try:
        yield
    finally:
        for s, h in previous.items():
            signal.signal(s, h)
        _received[:] = outer


def local_signal() -> int | None:
    """The first signal this process received inside the guard, or None."""
    return _received[0] if _received else None


def requested() -> int | None:
    """The signal that stops the run, agreed by all processes: each host's flag is gathered
    (one small collective per call on several hosts), and the lowest signal number seen
    anywhere wins, so all hosts take the same decision at the same step."""
    import jax

    mine = local_signal() or 0
    if jax.process_count() == 1:
        return mine or None
    from jax.experimental import multihost_utils

    every = np.asarray(multihost_utils.process_allgather(np.int32(mine)))
    seen = every[every > 0]
    return int(seen.min()) if seen.size else None


def signal_name(signum: int) -> str:
    return signal.Signals(signum).name
