"""`rce-jax eval` end to end: numbers, resume after a real kill, devices, settings, bad input."""

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from eval_fixtures import make_model_dir, reference_decomposition, write_corpus

from rce_jax.cli import main

L = 16  # context length: short, so that long documents take several windows


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """A fixed model and corpus: fresh draws would sometimes put a competitor logit within
    float32 rounding of a target, where either rank is right (see eval_fixtures)."""
    root = tmp_path_factory.mktemp("eval")
    model, tokenizer = make_model_dir(root / "tiny-llama", seed=0)
    texts = write_corpus(root / "corpus.jsonl", n_docs=8, seed=1, max_words=40)
    return root, model, tokenizer, texts


def run_eval(root, out, *extra, data=None, model=None):
    args = ["eval", "--model", str(model or root / "tiny-llama"), "--data", str(data or root / "corpus.jsonl"),
            "--context-length", str(L), "--out", str(out), "--no-progress", "--cache-dir", str(root / "cache"),
            *extra]
    return main(args)


def load_result(out):
    files = [p for p in Path(out).glob("*.json")]
    assert len(files) == 1, files
    return json.loads(files[0].read_text())


def test_eval_equals_transformers_on_harness_windows(setup):
    """CE, EE, SA, Conf and the token count equal transformers' logits on lm-eval's windows
    (float64 NumPy) to 1e-5, every document token scored once; word/byte metrics likewise."""
    root, model, tokenizer, texts = setup
    assert run_eval(root, root / "out", "--batch-size", "4") == 0
    r = load_result(root / "out")
    ref, n, sum_ll = reference_decomposition(model, tokenizer, texts, L)
    assert r["n_tokens"] == n
    for key in ("ce", "ee", "sa", "conf"):
        assert r[key] == pytest.approx(ref[key], abs=1e-5), key
    assert abs(r["ce"] - (r["ee"] + r["sa"] - r["conf"])) < 1e-9
    n_words = sum(len(re.split(r"\s+", t)) for t in texts)
    n_bytes = sum(len(t.encode()) for t in texts)
    assert r["word_perplexity"] == pytest.approx(np.exp(-sum_ll / n_words), rel=1e-5)
    assert r["bits_per_byte"] == pytest.approx(-sum_ll / (n_bytes * np.log(2)), rel=1e-5)
    assert r["family"] == r["architecture"] == "llama" and r["n_params"] > r["n_params_non_embedding"] > 0
    assert sum(r["rank_stats"]["count"]) == n
    assert r["settings"]["context_length"] == L and r["settings"]["tie_rule"].startswith("strictly")


def test_unfused_packed_and_profile_paths_agree(setup):
    """Materialised logits, one window per row and the score-profile path give the same counts."""
    root, *_ = setup
    if not (root / "out").exists():
        run_eval(root, root / "out", "--batch-size", "4")
    base = load_result(root / "out")
    counts = dict(zip(base["rank_stats"]["ranks"], base["rank_stats"]["count"]))
    frequent = sorted(counts, key=lambda r: -counts[r])[:2]  # ranks that certainly have tokens
    absent = max(counts) + 1
    chosen = [frequent[0], absent, frequent[1]]
    assert run_eval(root, root / "out2", "--batch-size", "3", "--no-fused", "--packing", "none",
                    "--profile-ranks", ",".join(map(str, chosen)), "--profile-top-k", "5") == 0
    r = load_result(root / "out2")
    assert r["rank_stats"]["count"] == base["rank_stats"]["count"]
    np.testing.assert_allclose(r["rank_stats"]["sum_logp"], base["rank_stats"]["sum_logp"], rtol=1e-6)
    prof = r["profile"]
    assert prof["ranks"] == chosen and prof["top_k"] == 5
    assert prof["count"] == [counts[frequent[0]], 0, counts[frequent[1]]]
    for k, row, n in zip(chosen, prof["mean_sorted_probs"], prof["count"]):
        if n == 0:
            assert row == [0.0] * 5
        else:  # sorted, a probability mass, and the target's own probability is somewhere in it
            assert all(a >= b for a, b in zip(row, row[1:])) and 0 < sum(row) <= 1 + 1e-6


def test_profile_sums_equal_numpy():
    """Score-profile sums: per chosen rank, the float64 NumPy sum over the scored tokens at that
    rank of their top-k probabilities sorted descending, and the token count (fresh logits,
    rounded so that ranks repeat and ties occur)."""
    import jax.numpy as jnp
    from np_reference import fresh_rng, np_token_stats

    from rce_jax.evaluate import ProfileStats, profile_sums

    rng = fresh_rng()
    z = np.round(rng.standard_normal((300, 40)) * 2, 1).astype(np.float32)
    targets = rng.integers(0, 40, 300)
    mask = rng.random(300) < 0.8
    _, rank, _ = np_token_stats(z, targets)
    ranks, top_k = (0, 3, 39), 5
    sums, count = profile_sums(jnp.asarray(z), jnp.asarray(rank), jnp.asarray(mask), ranks=ranks,
                               top_k=top_k)
    zz = z.astype(np.float64)
    probs = np.exp(zz - zz.max(1, keepdims=True))
    probs /= probs.sum(1, keepdims=True)
    top = -np.sort(-probs, axis=1)[:, :top_k]
    for i, k in enumerate(ranks):
        sel = mask & (rank == k)
        assert int(count[i]) == int(sel.sum())
        np.testing.assert_allclose(np.asarray(sums[i], np.float64), top[sel].sum(0), rtol=1e-5,
                                   atol=1e-6)
    prof = ProfileStats(ranks, top_k)
    prof.add(sums, count)
    prof.add(sums, count)
    d = prof.to_dict()
    assert d["count"] == [2 * int(c) for c in count]
    mean0 = top[mask & (rank == 0)].mean(0)
    np.testing.assert_allclose(d["mean_sorted_probs"][0], mean0, rtol=1e-5, atol=1e-6)


def test_existing_result_is_skipped_and_force_recomputes(setup, capsys):
    root, *_ = setup
    out = root / "skip"
    assert run_eval(root, out) == 0
    first = load_result(out)
    assert run_eval(root, out) == 0
    assert "exists; skipping" in capsys.readouterr().out
    assert run_eval(root, out, "--force", "--family", "tiny-ladder") == 0
    again = load_result(out)
    assert again["rank_stats"] == first["rank_stats"]
    assert (again["family"], again["architecture"]) == ("tiny-ladder", "llama")


def test_existing_result_of_other_inputs_is_refused_not_returned(setup, tmp_path, capsys):
    """A result file named like the request but made from another corpus (same file name in
    another folder) or another context length is an error, never returned as this run's result."""
    root, *_ = setup
    out = tmp_path / "out"
    assert run_eval(root, out) == 0
    first = (out / "tiny-llama__corpus.jsonl.json").read_text()
    other = tmp_path / "elsewhere" / "corpus.jsonl"
    other.parent.mkdir()
    write_corpus(other, n_docs=3, seed=99, max_words=20)
    assert run_eval(root, out, data=other) == 2
    assert "corpus_fingerprint" in capsys.readouterr().err
    assert main(["eval", "--model", str(root / "tiny-llama"), "--data", str(root / "corpus.jsonl"),
                 "--context-length", str(2 * L), "--out", str(out), "--no-progress",
                 "--cache-dir", str(root / "cache")]) == 2
    assert "context_length: 16 there, 32 now" in capsys.readouterr().err
    assert (out / "tiny-llama__corpus.jsonl.json").read_text() == first
    assert run_eval(root, out) == 0  # the same request still reuses it
    assert "exists; skipping" in capsys.readouterr().out


def test_partial_run_is_not_resumed_under_another_implementation(setup, tmp_path, monkeypatch,
                                                                 capsys):
    """The token-statistics implementation (and fused vs materialised logits) can move a
    near-tie's rank, so a partial run is resumed only with the same ones; the result's settings
    then describe every batch."""
    root, *_ = setup
    out = tmp_path / "out"
    args = ["--batch-size", "1", "--packing", "none", "--checkpoint-every", "1"]

    def fail(self):
        raise ValueError("stopped after the last snapshot")

    with monkeypatch.context() as m:  # leaves a partial state behind, as a crash would
        m.setattr("rce_jax.stats.RankStats.decompose", fail)
        assert run_eval(root, out, *args) == 2
    assert (out / ".partial").exists()
    capsys.readouterr()
    assert run_eval(root, out, *args, "--no-fused") == 0
    printed = capsys.readouterr().out
    assert "resuming" not in printed and "other settings (fused)" in printed


def _cli(*args, env=None):
    return [sys.executable, "-m", "rce_jax.cli", *args]


def test_killed_run_resumes_to_identical_counts(setup, tmp_path):
    """SIGKILL part-way through; the same command continues from its last snapshot and ends with
    exactly the counts of an uninterrupted run."""
    root, *_ = setup
    corpus = tmp_path / "long.jsonl"
    write_corpus(corpus, n_docs=400, seed=7, max_words=12)
    common = ["--context-length", str(L), "--batch-size", "1", "--packing", "none",
              "--checkpoint-every", "1", "--cache-dir", str(root / "cache"), "--no-progress",
              "--model", str(root / "tiny-llama"), "--data", str(corpus)]
    assert main(["eval", *common, "--out", str(tmp_path / "whole")]) == 0
    whole = load_result(tmp_path / "whole")

    out = tmp_path / "killed"
    proc = subprocess.Popen(_cli("eval", *common, "--out", str(out)), stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    partial = out / ".partial"
    deadline = time.time() + 120
    state_file = None
    while time.time() < deadline and proc.poll() is None:
        found = list(partial.glob("tiny-llama__long.jsonl-*/state.json")) if partial.exists() else []
        state_file = found[0] if found else None
        if state_file is not None:
            try:
                if json.loads(state_file.read_text())["next_batch"] >= 20:
                    break
            except (json.JSONDecodeError, KeyError):
                pass
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, proc.stderr.read().decode()[-2000:]
    done = json.loads(state_file.read_text())["next_batch"]
    assert 20 <= done < whole["n_documents"]  # really interrupted part-way
    assert not list(out.glob("*.json"))  # no result that looks complete

    resumed = subprocess.run(_cli("eval", *common, "--out", str(out)), capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert f"at batch {done}/" in resumed.stdout
    r = load_result(out)
    assert r["rank_stats"]["count"] == whole["rank_stats"]["count"]
    assert r["rank_stats"]["ranks"] == whole["rank_stats"]["ranks"]
    np.testing.assert_allclose(r["rank_stats"]["sum_logp"], whole["rank_stats"]["sum_logp"], rtol=1e-12)
    # The bootstrap's replicates come back from the snapshot too (float64 sums in another order).
    np.testing.assert_allclose(r["intervals"]["replicates_values"]["ce"],
                               whole["intervals"]["replicates_values"]["ce"], rtol=1e-12)
    assert not state_file.parent.exists()


def test_eight_simulated_devices_give_identical_counts(setup, tmp_path):
    """The same evaluation on one CPU device and on an 8-device data-parallel mesh."""
    root, *_ = setup
    common = ["--context-length", str(L), "--batch-size", "8", "--cache-dir", str(root / "cache"),
              "--no-progress", "--model", str(root / "tiny-llama"), "--data", str(root / "corpus.jsonl")]
    assert main(["eval", *common, "--out", str(tmp_path / "one")]) == 0
    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=8"}
    proc = subprocess.run(_cli("eval", *common, "--out", str(tmp_path / "eight")), env=env,
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
    one, eight = load_result(tmp_path / "one"), load_result(tmp_path / "eight")
    assert eight["versions"]["device_count"] == 8 and one["versions"]["device_count"] == 1
    assert eight["rank_stats"]["count"] == one["rank_stats"]["count"]
    np.testing.assert_allclose(eight["rank_stats"]["sum_logp"], one["rank_stats"]["sum_logp"], rtol=1e-6)
    # Document weights do not depend on the device a row lands on. The float32 log s of two
    # layouts differ as the rank sums above (rtol 1e-6; measured 2.4e-7 on CE); SA and Conf lie
    # near zero, so an absolute 1e-6 nats is added (measured 2.8e-8 there).
    for k in ("ce", "ee", "sa", "conf"):
        np.testing.assert_allclose(eight["intervals"]["replicates_values"][k],
                                   one["intervals"]["replicates_values"][k], rtol=1e-6, atol=1e-6)


def test_batches_are_placed_right_on_two_processes():
    """Two processes (two CPU devices each) joined by jax.distributed: rce_jax.sharding.shard_batch of
    the global batch gives every device the same global array, both when the 'data' axis spans
    the processes (mesh 4x1) and when the 'model' axis does (mesh 1x4, a model too large for
    one host), where each process holds every row."""
    import socket

    with socket.socket() as s:
        s.bind(("localhost", 0))
        port = str(s.getsockname()[1])
    here = Path(__file__).parent
    env = {**os.environ, "JAX_PLATFORMS": "cpu",
           "PYTHONPATH": os.pathsep.join([str(here.parent), str(here.parent / "kernels")])}
    procs = [subprocess.Popen([sys.executable, str(here / "multihost_worker.py"), port, str(p)],
                              env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for p in range(2)]
    outs = [p.communicate(timeout=120) for p in procs]
    for p, (out, err) in zip(procs, outs):
        assert p.returncode == 0, err[-3000:]
        for model in (1, 4):
            assert f"RESULT model={model} (4, 3) 66" in out, out + err[-3000:]


def test_bad_input_gives_clear_errors_and_no_result(setup, tmp_path, capsys):
    root, *_ = setup
    bad_utf8 = tmp_path / "latin1.txt"
    bad_utf8.write_bytes("caf\xe9 au lait".encode("latin-1"))
    empty = tmp_path / "empty.jsonl"
    empty.write_text(json.dumps({"text": ""}) + "\n")
    small_vocab = tmp_path / "small-vocab"
    make_model_dir(small_vocab, vocab_extra=-100)  # the head has 100 rows fewer than the tokenizer
    cases = [
        (dict(model=tmp_path / "no-such-model"), "no-such-model"),
        (dict(model=small_vocab), "tokenizer and model do not fit"),
        (dict(data=empty), "empty"),
        (dict(data=bad_utf8), "UTF-8"),
        (dict(data="tfds:no_such_dataset_rce"), "tfds|TFDS"),
    ]
    for kwargs, message in cases:
        out = tmp_path / f"out-{len(message)}"
        assert run_eval(root, out, **kwargs) == 2
        err = capsys.readouterr().err
        assert re.search(message, err), err
        assert not list(out.glob("*.json")) if out.exists() else True
    out = tmp_path / "too-long"
    assert main(["eval", "--model", str(root / "tiny-llama"), "--data", str(root / "corpus.jsonl"),
                 "--context-length", "4096", "--out", str(out), "--cache-dir", str(root / "cache")]) == 2
    assert "exceeds the model's maximum 128" in capsys.readouterr().err
    assert not out.exists() or not list(out.glob("*.json"))


def test_damaged_snapshot_files_start_the_run_over(tmp_path, capsys):
    """A partial state whose statistics or profile file is truncated is discarded with a message,
    never a traceback: the run starts again from batch 0."""
    from rce_jax.evaluate.profile import ProfileStats
    from rce_jax.evaluate.resume import EvalState
    from rce_jax.stats import RankStats

    settings = {"context_length": 8}
    for damaged in ("stats", "profile"):
        folder = tmp_path / damaged
        state = EvalState.open(folder, settings, RankStats(3, [1, 2, 0], [-0.5, -3.0, 0.0]),
                               ProfileStats((1,), 2))
        state.save(4)
        target = next(folder.glob(f"{damaged}-*.npz"))
        target.write_bytes(target.read_bytes()[: target.stat().st_size // 2])
        again = EvalState.open(folder, settings, RankStats.zeros(3), ProfileStats((1,), 2))
        assert again.next_batch == 0 and again.stats.n_tokens == 0
        assert "unreadable partial state" in capsys.readouterr().out
