"""What pods, clouds and users do to long runs, done for real: signals to real processes, files in
the way, read-only and full file systems (small tmpfs mounts), closed pipes, an allocation that
fails. Each must end in one line, lose nothing, and resume or finish with the same command."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from train_helpers import ROOT, tiny_config_dict, without_timing

from rce_jax.cli import main

# TRANSFORMERS_VERBOSITY: without torch, transformers logs a notice on import; the one-line
# checks below are about rce-jax's own messages.
ENV = dict(os.environ, PYTHONPATH=os.pathsep.join([ROOT, os.path.join(ROOT, "kernels")]),
           TRANSFORMERS_VERBOSITY="error")


def cli(*args):
    return [sys.executable, "-m", "rce_jax.cli", *args]


@contextlib.contextmanager
def small_tmpfs(path: Path, size: str = "64k", read_only: bool = False):
    """A real tmpfs of ``size`` at ``path`` (needs root and mount rights; skips otherwise)."""
    path.mkdir(parents=True, exist_ok=True)
    opts = f"size={size}" + (",ro" if read_only else "")
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", opts, "tmpfs", str(path)], capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root): {r.stderr.strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", str(path)], capture_output=True)


def fill(folder: Path, leave: int = 0) -> Path:
    """Fill the file system of ``folder`` so that ``leave`` bytes stay free."""
    st = os.statvfs(folder)
    free = st.f_bavail * st.f_frsize
    filler = folder / "filler"
    with open(filler, "wb") as f:
        with contextlib.suppress(OSError):
            f.write(b"\0" * max(free - leave, 0))
    return filler


def one_line(err: str) -> str:
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


# --- eval --------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def model_and_corpus(tmp_path_factory):
    pytest.importorskip("torch", reason="the tiny model directory is written by transformers")
    from eval_fixtures import make_model_dir, write_corpus

    root = tmp_path_factory.mktemp("faults")
    make_model_dir(root / "tiny-llama", seed=0)
    write_corpus(root / "long.jsonl", n_docs=300, seed=7, max_words=12)
    return root


def eval_args(root, out, *extra):
    return ["eval", "--model", str(root / "tiny-llama"), "--data", str(root / "long.jsonl"),
            "--context-length", "16", "--batch-size", "1", "--packing", "none", "--no-progress",
            "--cache-dir", str(root / "cache"), "--out", str(out), *extra]


def result_of(out: Path) -> dict:
    files = list(out.glob("*.json"))
    assert len(files) == 1, files
    return json.loads(files[0].read_text())


def wait_for_batches(out: Path, proc, at_least: int, timeout: float = 120) -> None:
    """Poll the snapshot state of a running eval until it has ``at_least`` batches."""
    deadline = time.time() + timeout
    while time.time() < deadline and proc.poll() is None:
        for state in out.glob(".partial/*/state.json"):
            with contextlib.suppress(json.JSONDecodeError, KeyError, OSError):
                if json.loads(state.read_text())["next_batch"] >= at_least:
                    return
        time.sleep(0.01)
    raise AssertionError(f"eval did not reach batch {at_least}: {proc.poll()}")


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_eval_signal_snapshots_and_rerun_gives_identical_statistics(model_and_corpus, tmp_path, sig):
    """SIGTERM or SIGINT to a running `rce-jax eval` (snapshots every 50 batches): it saves the
    statistics of the batches done as a snapshot, says so in one line and exits 128 + signal; the
    same command resumes at that batch and ends with counts and sums of log s identical (bit for
    bit: the same batches are folded in the same order) to an uninterrupted run, and no .partial
    folder is left."""
    root = model_and_corpus
    whole = tmp_path / "whole"
    assert main(eval_args(root, whole)) == 0
    out = tmp_path / "stopped"
    proc = subprocess.Popen(cli(*eval_args(root, out, "--checkpoint-every", "50")), env=ENV,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    wait_for_batches(out, proc, 50)  # running and past its first scheduled snapshot
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 128 + sig, err[-3000:]
    line = one_line(err)
    assert f"stopped by {signal.Signals(sig).name}: saved the statistics of" in line
    stopped_at = int(line.split("saved the statistics of ")[1].split()[0])
    assert 50 <= stopped_at < 300 and not list(out.glob("*.json"))
    resumed = subprocess.run(cli(*eval_args(root, out)), env=ENV, capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert f"at batch {stopped_at}/" in resumed.stdout
    a, b = result_of(whole)["rank_stats"], result_of(out)["rank_stats"]
    assert a["ranks"] == b["ranks"] and a["count"] == b["count"] and a["sum_logp"] == b["sum_logp"]
    assert not (out / ".partial").exists() and not (whole / ".partial").exists()


def test_eval_output_checked_before_the_model_is_read(tmp_path, capsys):
    """--out an existing file, a path under a file: exit 2 with one line naming the path, before
    the model is looked at (the model given does not exist, and its error is not the one seen)."""
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    for out, says in ((blocker, "a file is in the way"), (blocker / "sub", "is a file, not a folder")):
        assert main(["eval", "--model", str(tmp_path / "no-model"), "--data", "python-docs",
                     "--context-length", "16", "--out", str(out)]) == 2
        line = one_line(capsys.readouterr().err)
        assert str(out) in line and says in line and "no-model" not in line


@pytest.mark.parametrize("case", ["read_only", "full"])
def test_eval_on_read_only_or_full_file_system_fails_first(tmp_path, capsys, case):
    """A read-only tmpfs and a full 64 KB tmpfs as --out: exit 2, one line naming the path and
    the reason, before any model is read."""
    with small_tmpfs(tmp_path / "mnt", read_only=case == "read_only") as mnt:
        if case == "full":
            fill(mnt)
        out = mnt / "results"
        assert main(["eval", "--model", str(tmp_path / "no-model"), "--data", "python-docs",
                     "--context-length", "16", "--out", str(out)]) == 2
        line = one_line(capsys.readouterr().err)
        reason = "read-only file system" if case == "read_only" else "no space left on the device"
        assert str(out) in line and reason in line, line


def test_result_that_cannot_be_written_stays_in_the_snapshot(model_and_corpus, tmp_path, capsys):
    """The disk fills during the run (a 256 KB tmpfs with 16 KB left: room for the test write and
    the final snapshot, not for the result): exit 2, one line saying where the statistics are and
    to rerun; after room is made, the same command writes the result without scoring again, equal
    to an uninterrupted run. Without the bootstrap: its final snapshot (replicates x ranks, float64)
    is larger than the result, so a disk with room for the snapshot but not the result cannot be
    set up by a fixed margin (docs/robustness.md)."""
    root = model_and_corpus
    whole = tmp_path / "whole"
    assert main(eval_args(root, whole, "--max-tokens", "400", "--bootstrap", "0")) == 0
    with small_tmpfs(tmp_path / "mnt", size="256k") as mnt:
        out = mnt / "results"
        filler = fill(mnt, leave=16 * 1024)
        assert main(eval_args(root, out, "--max-tokens", "400", "--checkpoint-every", "100000",
                              "--bootstrap", "0")) == 2
        line = one_line(capsys.readouterr().err)
        assert "cannot write the result" in line and "statistics of all" in line
        assert "rerun the same command to finish" in line and not list(out.glob("*.json"))
        filler.unlink()
        assert main(eval_args(root, out, "--max-tokens", "400", "--bootstrap", "0")) == 0
        printed = capsys.readouterr().out
        assert "resuming" in printed
        a, b = result_of(whole)["rank_stats"], result_of(out)["rank_stats"]
        assert a == b
        assert not (out / ".partial").exists()


# --- train -------------------------------------------------------------------------------------

def test_train_sigterm_checkpoints_and_resumes_bit_identically(tmp_path):
    """SIGTERM to `rce-jax train` with save_every past the end: it writes a checkpoint of the step
    it is at, says so in one line and exits 143; the same command resumes from that step and ends
    with parameters bit-identical to an uninterrupted run and the same metrics rows."""
    from safetensors.numpy import load_file

    from rce_jax.train.checkpoint import MetricsLog

    cfg = tmp_path / "config.json"
    cfg.write_text(json.dumps(tiny_config_dict(tmp_path, steps=40, save_every=1000, log_every=1,
                                               **{"eval.every": 0})))
    base = ["train", "--config", str(cfg), "--no-progress"]
    full = subprocess.run(cli(*base, "--out", str(tmp_path / "full")), env=ENV, capture_output=True,
                          text=True, timeout=600)
    assert full.returncode == 0, full.stderr[-3000:]
    out = tmp_path / "stopped"
    proc = subprocess.Popen(cli(*base, "--out", str(out)), env=ENV, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    log = MetricsLog(out / "metrics.jsonl")
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None and not (log.rows() and log.rows()[-1]["step"] >= 3):
        time.sleep(0.01)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 143, err[-3000:]
    line = one_line(err)
    assert "stopped by SIGTERM: saved the checkpoint of step" in line
    step = int(line.split("checkpoint of step ")[1].split()[0])
    assert 3 <= step < 40 and not (out / "model").exists()
    resumed = subprocess.run(cli(*base, "--out", str(out)), env=ENV, capture_output=True, text=True,
                             timeout=600)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert f"resuming from the checkpoint at step {step}" in resumed.stdout
    wa, wb = load_file(tmp_path / "full/model/model.safetensors"), load_file(out / "model/model.safetensors")
    assert wa.keys() == wb.keys() and all(np.array_equal(wa[k], wb[k]) for k in wa)
    ra, rb = MetricsLog(tmp_path / "full/metrics.jsonl").rows(), MetricsLog(out / "metrics.jsonl").rows()
    assert [without_timing(r) for r in ra] == [without_timing(r) for r in rb]


def test_train_demo_scaling_stats_refuse_a_file_in_the_way(tmp_path, capsys):
    """Every writing command checks its output first: a file where the folder (or, for
    `stats merge -o`, a folder where the file) should go is one line naming it, exit 2."""
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    folder = tmp_path / "a-folder"
    folder.mkdir()
    cases = [
        (["train", "--preset", "quick-2", "--set", f"data.train=[{tmp_path / 'none.jsonl'}]",
          "--out", str(blocker)], blocker),
        (["demo", "--quick", "--out", str(blocker)], blocker),
        (["scaling", str(tmp_path / "none.json"), "--out", str(blocker / "sub")], blocker / "sub"),
        (["stats", "merge", str(tmp_path / "none.npz"), "-o", str(folder)], folder),
    ]
    for argv, named in cases:
        assert main(argv) == 2, argv
        line = one_line(capsys.readouterr().err)
        assert str(named) in line and "none." not in line, line


# --- small faults ------------------------------------------------------------------------------

def test_closed_pipe_ends_quietly():
    """`rce-jax train --print-config | head -0`: the reader is gone before the output is written;
    the command ends without a traceback, with the status of SIGPIPE (141)."""
    proc = subprocess.Popen(cli("train", "--preset", "quick-2", "--print-config"), env=ENV,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    proc.stdout.close()
    err = proc.stderr.read().decode()
    proc.wait(timeout=120)
    assert proc.returncode == 141 and err == "", err


def test_exported_files_get_ordinary_permissions(tmp_path):
    """save_pretrained's files get 0666 less the umask (safetensors makes its own file; mkstemp
    would leave 0600)."""
    from rce_jax.models import ModelConfig, init_model, save_pretrained

    config = ModelConfig(family="gpt2", vocab_size=64, hidden_size=16, num_layers=1, num_heads=2,
                         intermediate_size=32, max_position_embeddings=32)
    umask = os.umask(0o022)
    try:
        save_pretrained(init_model(config, seed=0), config, tmp_path / "model")
    finally:
        os.umask(umask)
    for f in (tmp_path / "model").iterdir():
        assert stat.S_IMODE(f.stat().st_mode) == 0o644, (f.name, oct(f.stat().st_mode))


def test_device_out_of_memory_is_one_line_naming_the_batch(tmp_path, monkeypatch, capsys):
    """A real failed XLA allocation (8 TiB on the CPU backend: RESOURCE_EXHAUSTED at once) raised
    inside `rce-jax eval` becomes one line naming the batch shape and the flags to change. (The
    evaluation itself is replaced by the allocation: the tiny test models cannot exhaust memory.)"""
    import jax
    import jax.numpy as jnp

    import rce_jax.evaluate

    def allocate(*args, **kwargs):
        jax.jit(lambda: jnp.zeros((2**41,), jnp.float32))().block_until_ready()

    monkeypatch.setattr(rce_jax.evaluate, "evaluate", allocate)
    assert main(["eval", "--model", "m", "--data", "d", "--context-length", "256", "--batch-size",
                 "1024", "--no-fused", "--out", str(tmp_path / "out")]) == 2
    line = one_line(capsys.readouterr().err)
    assert "out of memory" in line and "1024 x 256 tokens" in line and "RESOURCE_EXHAUSTED" in line
    assert "--batch-size" in line and "--no-fused" in line and "--model-parallel" in line
    # `rce-jax train` (batch shape from its config, no --no-fused / --model-parallel flags)
    import argparse

    from rce_jax.cli import out_of_memory_message
    try:
        allocate()
    except Exception as e:  # the same real allocation failure
        message = out_of_memory_message(e, argparse.Namespace(command="train", batch_size=None,
                                                              context_length=None))
    assert "--set model_parallel=N" in message and "--no-fused" not in message and "\n" not in message


def test_errors_name_the_flag(capsys):
    """A non-positive --checkpoint-every is named as that flag, not as 'batch size and checkpoint
    interval'."""
    assert main(["eval", "--model", "m", "--data", "d", "--context-length", "16",
                 "--checkpoint-every", "0", "--out", "x"]) == 2
    assert "--checkpoint-every must be positive, got 0" in one_line(capsys.readouterr().err)


def test_hosts_agree_on_a_signal_only_one_of_them_got():
    """Two processes joined by jax.distributed: a real SIGTERM to process 1 alone makes
    ``preempt.requested()`` return SIGTERM on both (so both save the same step), and None on both
    before it."""
    import socket

    with socket.socket() as s:
        s.bind(("localhost", 0))
        port = str(s.getsockname()[1])
    env = dict(ENV, JAX_PLATFORMS="cpu")
    worker = os.path.join(ROOT, "tests", "preempt_worker.py")
    procs = [subprocess.Popen([sys.executable, worker, port, str(p)], env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for p in range(2)]
    outs = [p.communicate(timeout=120) for p in procs]
    term = int(signal.SIGTERM)
    for pid, (p, (out, err)) in enumerate(zip(procs, outs)):
        assert p.returncode == 0, err[-3000:]
        local = term if pid == 1 else None
        assert f"RESULT pid={pid} before=None local={local} after={term}" in out, out + err[-3000:]
