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
from tolerances import (DECOMPOSITION_F32_ABS, F64_IDENTITY_ABS, F64_SUM_REL, PROBABILITY_MASS_F32_SLACK,
                        PROBABILITY_SUM_F32_ABS, PROBABILITY_SUM_F32_REL, REPLICATES_TWO_LAYOUTS_ABS,
                        REPLICATES_TWO_LAYOUTS_REL, TEXT_METRIC_F32_REL,
                        assert_sum_logp_two_paths_close)

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
    (float64 NumPy) to DECOMPOSITION_F32_ABS, every document token scored once; word/byte
    metrics to TEXT_METRIC_F32_REL (tests/tolerances.py)."""
    root, model, tokenizer, texts = setup
    assert run_eval(root, root / "out", "--batch-size", "4") == 0
    r = load_result(root / "out")
    ref, n, sum_ll = reference_decomposition(model, tokenizer, texts, L)
    assert r["n_tokens"] == n
    for key in ("ce", "ee", "sa", "conf"):
        assert r[key] == pytest.approx(ref[key], abs=DECOMPOSITION_F32_ABS), key
    assert abs(r["ce"] - (r["ee"] + r["sa"] - r["conf"])) < F64_IDENTITY_ABS
    n_words = sum(len(re.split(r"\s+", t)) for t in texts)
    n_bytes = sum(len(t.encode()) for t in texts)
    assert r["word_perplexity"] == pytest.approx(np.exp(-sum_ll / n_words), rel=TEXT_METRIC_F32_REL)
    assert r["bits_per_byte"] == pytest.approx(-sum_ll / (n_bytes * np.log(2)), rel=TEXT_METRIC_F32_REL)
    assert r["family"] == r["architecture"] == "llama" and r["n_params"] > r["n_params_non_embedding"] > 0
    assert sum(r["rank_stats"]["count"]) == n
    assert r["settings"]["context_length"] == L and r["settings"]["tie_rule"].startswith("strictly")


def test_unfused_packed_and_profile_paths_agree(setup):
    """Materialised logits, one window per row and the score-profile path give the same counts,
    and per rank the same sum of log s up to the float32 bound of two paths, 2 x count x
    LOGP_TWO_F32_PATHS_ABS (tests/tolerances.py)."""
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
    assert_sum_logp_two_paths_close(r["rank_stats"]["sum_logp"], base["rank_stats"]["sum_logp"],
                                    base["rank_stats"]["count"])
    prof = r["profile"]
    assert prof["ranks"] == chosen and prof["top_k"] == 5
    assert prof["count"] == [counts[frequent[0]], 0, counts[frequent[1]]]
    for k, row, n in zip(chosen, prof["mean_sorted_probs"], prof["count"]):
        if n == 0:
            assert row == [0.0] * 5
        else:  # sorted, a probability mass, and the target's own probability is somewhere in it
            assert all(a >= b for a, b in zip(row, row[1:])) and 0 < sum(row) <= 1 + PROBABILITY_MASS_F32_SLACK


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
        np.testing.assert_allclose(np.asarray(sums[i], np.float64), top[sel].sum(0),
                                   rtol=PROBABILITY_SUM_F32_REL, atol=PROBABILITY_SUM_F32_ABS)
    prof = ProfileStats(ranks, top_k)
    prof.add(sums, count)
    prof.add(sums, count)
    d = prof.to_dict()
    assert d["count"] == [2 * int(c) for c in count]
    mean0 = top[mask & (rank == 0)].mean(0)
    np.testing.assert_allclose(d["mean_sorted_probs"][0], mean0, rtol=PROBABILITY_SUM_F32_REL,
                               atol=PROBABILITY_SUM_F32_ABS)


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


def test_other_inputs_get_their_own_file_and_a_changed_corpus_is_refused(setup, tmp_path, capsys):
    """Another corpus of the same file name (in another folder) and another context length land
    in files of their own in the same --out, nothing overwritten; a corpus whose content changed
    under the same path is an error (naming the fingerprint), never returned as this run's
    result; the same request still reuses its file."""
    root, *_ = setup
    out = tmp_path / "out"
    assert run_eval(root, out) == 0
    (first_file,) = out.glob("*.json")
    first = first_file.read_text()
    assert first_file.name.startswith("tiny-llama__corpus.jsonl__L16-plain-rankmodel-float32__")
    other = tmp_path / "elsewhere" / "corpus.jsonl"
    other.parent.mkdir()
    write_corpus(other, n_docs=3, seed=99, max_words=20)
    assert run_eval(root, out, data=other) == 0
    assert main(["eval", "--model", str(root / "tiny-llama"), "--data", str(root / "corpus.jsonl"),
                 "--context-length", str(2 * L), "--out", str(out), "--no-progress",
                 "--cache-dir", str(root / "cache")]) == 0
    files = sorted(out.glob("*.json"))
    assert len(files) == 3 and first_file.read_text() == first
    assert len({json.loads(f.read_text())["corpus_fingerprint"] for f in files}) == 2
    capsys.readouterr()
    write_corpus(other, n_docs=4, seed=98, max_words=20)  # same path, new content
    assert run_eval(root, out, data=other) == 2
    assert "corpus_fingerprint" in capsys.readouterr().err
    assert run_eval(root, out) == 0  # the same request still reuses its file
    assert "exists; skipping" in capsys.readouterr().out
    assert first_file.read_text() == first


def test_save_stats_and_stats_show_read_results_and_statistics_alike(setup, tmp_path, capsys):
    """``eval --save-stats`` writes the RankStats file beside the result; ``stats show`` gives
    the same decomposition from the result file and from the statistics file; ``stats merge``
    refuses a file named twice, and merging two files adds their counts (here a result and its
    own statistics file: twice the tokens)."""
    root, *_ = setup
    out = tmp_path / "out"
    assert run_eval(root, out, "--save-stats") == 0
    (result_file,) = out.glob("*.json")
    stats_file = result_file.with_suffix(".stats.npz")
    assert stats_file.exists()
    r = json.loads(result_file.read_text())
    shown = []
    for f in (result_file, stats_file):
        capsys.readouterr()
        assert main(["stats", "show", "--json", str(f)]) == 0
        shown.append(json.loads(capsys.readouterr().out))
    for key in ("ce", "ee", "sa", "conf", "n_tokens"):
        assert shown[0][key] == shown[1][key] == r[key], key
    assert shown[0]["meta"] == shown[1]["meta"]
    assert main(["stats", "merge", str(result_file), str(result_file), "-o", str(tmp_path / "m.npz")]) == 2
    assert main(["stats", "merge", str(result_file), str(stats_file), "-o", str(tmp_path / "m.npz")]) == 0
    capsys.readouterr()
    assert main(["stats", "show", "--json", str(tmp_path / "m.npz")]) == 0
    assert json.loads(capsys.readouterr().out)["n_tokens"] == 2 * r["n_tokens"]


def test_names_and_a_separate_tokenizer(setup, tmp_path):
    """``--model NAME=DIR`` and ``--data NAME=SPEC`` name the result (record and file); a model
    folder without tokenizer files is refused with a hint, and evaluates with ``--tokenizer DIR``
    to the very numbers of the same model with its own tokenizer."""
    root, *_ = setup
    bare = tmp_path / "bare"
    bare.mkdir()
    for f in (root / "tiny-llama").iterdir():
        if f.name.startswith(("config", "model")):
            (bare / f.name).symlink_to(f)
    out = tmp_path / "out"
    common = ["--context-length", str(L), "--out", str(out), "--no-progress", "--cache-dir", str(root / "cache")]
    assert main(["eval", "--model", f"ref={root / 'tiny-llama'}", "--data", f"prose={root / 'corpus.jsonl'}",
                 *common]) == 0
    assert main(["eval", "--model", str(bare), "--data", str(root / "corpus.jsonl"), *common]) == 2
    assert main(["eval", "--model", f"bare={bare}", "--data", f"prose={root / 'corpus.jsonl'}",
                 "--tokenizer", str(root / "tiny-llama"), *common]) == 0
    ref, = out.glob("ref__prose__*.json")
    other, = out.glob("bare__prose__*.json")
    a, b = json.loads(ref.read_text()), json.loads(other.read_text())
    assert (a["model"], a["dataset"], b["model"]) == ("ref", "prose", "bare")
    assert a["rank_stats"] == b["rank_stats"] and a["tokenizer_fingerprint"] == b["tokenizer_fingerprint"]
    assert b["settings"]["tokenizer_path"] == str(root / "tiny-llama")


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
        found = list(partial.glob("tiny-llama__long.jsonl__*/state.json")) if partial.exists() else []
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
    assert r["rank_stats"]["sum_logp"] == whole["rank_stats"]["sum_logp"]  # same batches, same order
    # The bootstrap's replicates come back from the snapshot too: the same float64 sums, folded
    # across a save and a load (F64_SUM_REL bounds any change of association).
    np.testing.assert_allclose(r["intervals"]["replicates_values"]["ce"],
                               whole["intervals"]["replicates_values"]["ce"], rtol=F64_SUM_REL)
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
    assert_sum_logp_two_paths_close(eight["rank_stats"]["sum_logp"], one["rank_stats"]["sum_logp"],
                                    one["rank_stats"]["count"])
    # Document weights do not depend on the device a row lands on (see REPLICATES_TWO_LAYOUTS_*).
    for k in ("ce", "ee", "sa", "conf"):
        np.testing.assert_allclose(eight["intervals"]["replicates_values"][k],
                                   one["intervals"]["replicates_values"][k],
                                   rtol=REPLICATES_TWO_LAYOUTS_REL, atol=REPLICATES_TWO_LAYOUTS_ABS)


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
