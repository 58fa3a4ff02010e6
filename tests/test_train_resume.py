"""A run killed with SIGKILL and restarted with the same command reproduces the uninterrupted run:
the same metrics rows (wall-clock fields aside) and bit-identical final parameters."""

import json
import signal
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from safetensors.numpy import load_file
from train_helpers import HERE, TIMING_KEYS, run_python, tiny_config_dict, without_timing

from rce_jax.train.checkpoint import MetricsLog

WORKER = f"{HERE}/train_worker.py"
KILL_AT = 13  # checkpoints every 5 steps: the kill leaves steps 11..13 (or 6..13) to redo


def test_sigkill_and_resume_reproduce_the_uninterrupted_run(tmp_path):
    """Uninterrupted run vs. the same run SIGKILLed after step 13 and restarted: the restart resumes
    from the last committed checkpoint (step 5 or 10), cuts the metrics log back to it, and ends
    with the same rows and bit-identical parameters."""
    cfg = tmp_path / "config.json"
    cfg.write_text(json.dumps(tiny_config_dict(tmp_path)))
    # tokenizer and token caches first, so that the two concurrent runs below only read them
    warm = run_python(["-c", "import json,sys; from rce_jax.train import TrainConfig; "
                       "from rce_jax.train.tokenizer import get_tokenizer; "
                       "from rce_jax.train.data import TrainStream; "
                       f"c = TrainConfig.from_dict(json.load(open({str(cfg)!r}))); "
                       "t = get_tokenizer(c.tokenizer, c.data.train); "
                       "TrainStream.from_corpora(c.data.train, t, seq_len=32, seed=0, cache_dir=c.data.cache_dir)"])
    assert warm.returncode == 0, warm.stderr
    with ThreadPoolExecutor(2) as pool:
        full = pool.submit(run_python, [WORKER, str(cfg), str(tmp_path / "full"), "-1"])
        killed = pool.submit(run_python, [WORKER, str(cfg), str(tmp_path / "resumed"), str(KILL_AT)])
        full, killed = full.result(), killed.result()
    assert full.returncode == 0, full.stderr
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    before = MetricsLog(tmp_path / "resumed" / "metrics.jsonl").rows()
    assert before[-1]["step"] == KILL_AT  # rows past the last checkpoint exist and must be redone
    assert not (tmp_path / "resumed" / "model").exists()

    resumed = run_python([WORKER, str(cfg), str(tmp_path / "resumed"), "-1"])
    assert resumed.returncode == 0, resumed.stderr
    restored = [int(w) for line in resumed.stdout.splitlines() if "resuming from the checkpoint" in line
                for w in line.split() if w.isdigit()]
    assert restored and restored[0] in (5, 10), resumed.stdout

    a = MetricsLog(tmp_path / "full" / "metrics.jsonl").rows()
    b = MetricsLog(tmp_path / "resumed" / "metrics.jsonl").rows()
    assert [r["step"] for r in a] == [0] + list(range(1, 25))
    assert [without_timing(r) for r in a] == [without_timing(r) for r in b]
    assert all(k in a[1] for k in TIMING_KEYS)
    wa = load_file(tmp_path / "full" / "model" / "model.safetensors")
    wb = load_file(tmp_path / "resumed" / "model" / "model.safetensors")
    assert wa.keys() == wb.keys()
    assert all(np.array_equal(wa[k], wb[k]) for k in wa)
    sb = json.loads((tmp_path / "resumed" / "summary.json").read_text())
    assert sb["resumed_from_step"] == restored[0]
