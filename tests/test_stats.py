"""RankStats: device segment sums, host accumulation, merging and the versioned file format."""

import json
import os

import jax.numpy as jnp
import numpy as np
import pytest
from np_reference import fresh_rng, np_decompose

import rce_jax
from rce_jax import RankStats, StatsFileError, batch_rank_sums
from tolerances import DECOMPOSITION_F32_ABS, SEGMENT_SUM_F32_ABS, SEGMENT_SUM_F32_REL


def random_token_stats(rng, T, V):
    logits = (rng.standard_normal((T, V)) * 2).astype(np.float32)
    targets = rng.integers(0, V, T)
    targets[: T // 3] = logits[: T // 3].argmax(axis=1)
    return rce_jax.token_stats(logits, targets)


def test_batch_rank_sums_equal_bincount():
    """Device segment sums equal NumPy bincounts by rank over the scored tokens."""
    rng = fresh_rng()
    logp, rank, ties = random_token_stats(rng, 500, 40)
    mask = rng.random(500) < 0.8
    sums = batch_rank_sums(logp, rank, ties, mask, vocab_size=40)
    r, lp, t = np.asarray(rank)[mask], np.asarray(logp, np.float64)[mask], np.asarray(ties)[mask]
    np.testing.assert_array_equal(sums.count_V, np.bincount(r, minlength=40))
    np.testing.assert_allclose(sums.sum_logp_V, np.bincount(r, weights=lp, minlength=40), rtol=SEGMENT_SUM_F32_REL,
                               atol=SEGMENT_SUM_F32_ABS)
    assert int(sums.n_tied) == int((t > 0).sum())
    assert int(sums.n_invalid) == 0 and int(sums.n_neginf) == 0


def test_merge_of_three_batches_equals_the_concatenation():
    """Stats add: three batches merged equal the stats of their concatenation (counts exactly)."""
    rng = fresh_rng()
    parts = [random_token_stats(rng, T, 64) for T in (100, 37, 250)]
    separate = [RankStats.from_token_stats(*p, vocab_size=64) for p in parts]
    merged = separate[0].merge(separate[1]).merge(separate[2])
    whole = RankStats.from_token_stats(
        *(jnp.concatenate([p[i] for p in parts]) for i in range(3)), vocab_size=64
    )
    np.testing.assert_array_equal(merged.count, whole.count)
    assert merged.count.dtype == np.int64 and merged.sum_logp.dtype == np.float64
    np.testing.assert_allclose(merged.sum_logp, whole.sum_logp, rtol=SEGMENT_SUM_F32_REL)
    assert merged.n_tied == whole.n_tied
    assert merged.n_tokens == 387
    # And the merged decomposition is the NumPy decomposition of all tokens.
    logp = np.concatenate([np.asarray(p.logp) for p in parts])
    rank = np.concatenate([np.asarray(p.rank) for p in parts])
    ref = np_decompose(logp, rank)
    dec = merged.decompose()
    for key in ("ce", "ee", "sa", "conf"):
        assert getattr(dec, key) == pytest.approx(ref[key], abs=DECOMPOSITION_F32_ABS)


def test_merge_does_not_modify_its_operands_and_commutes():
    rng = fresh_rng()
    a = RankStats.from_token_stats(*random_token_stats(rng, 50, 16), vocab_size=16)
    b = RankStats.from_token_stats(*random_token_stats(rng, 70, 16), vocab_size=16)
    a_count = a.count.copy()
    ab, ba = a + b, b + a
    np.testing.assert_array_equal(a.count, a_count)
    np.testing.assert_array_equal(ab.count, ba.count)
    np.testing.assert_array_equal(ab.sum_logp, ba.sum_logp)


def test_merge_refuses_other_vocab_sizes_and_settings():
    with pytest.raises(ValueError, match="vocab size 10 and 12"):
        RankStats.zeros(10).merge(RankStats.zeros(12))
    a = RankStats.zeros(10, {"logits_dtype": "bfloat16"})
    b = RankStats.zeros(10, {"logits_dtype": "float32"})
    with pytest.raises(ValueError, match="logits_dtype: 'bfloat16' vs 'float32'"):
        a.merge(b)


def test_empty_stats_cannot_be_decomposed():
    with pytest.raises(ValueError, match="empty RankStats"):
        RankStats.zeros(100).decompose()


def test_invalid_batches_are_refused_and_leave_the_stats_unchanged():
    stats = RankStats.zeros(4)
    logp = jnp.array([-1.0, jnp.nan, -2.0])
    rank = jnp.array([0, -1, 1])
    ties = jnp.array([0, -1, 0])
    with pytest.raises(ValueError, match=r"1 scored token\(s\) have NaN"):
        stats.add_batch(batch_rank_sums(logp, rank, ties, jnp.ones(3, bool), vocab_size=4))
    assert stats.n_tokens == 0
    # The same batch with the bad token masked is fine.
    stats.add_batch(batch_rank_sums(logp, rank, ties, jnp.array([1, 0, 1], bool), vocab_size=4))
    assert stats.n_tokens == 2


def test_ranks_beyond_the_vocab_size_are_refused_not_dropped():
    """A scored token whose rank does not fit the statistics' vocab_size (e.g. ranks taken over a
    padded head, statistics sized to the tokenizer) is an error, never silently left out."""
    logp = jnp.array([-0.1, -2.0, -3.0])
    rank = jnp.array([0, 5, 4])
    ties = jnp.zeros(3, jnp.int32)
    sums = batch_rank_sums(logp, rank, ties, jnp.ones(3, bool), vocab_size=4)
    assert int(sums.n_invalid) == 2
    with pytest.raises(ValueError, match=r"2 scored token\(s\).*rank"):
        RankStats.from_token_stats(logp, rank, ties, vocab_size=4)
    # Masked, they are ignored like any other unscored token.
    stats = RankStats.from_token_stats(logp, rank, ties, jnp.array([1, 0, 0], bool), vocab_size=4)
    assert stats.n_tokens == 1


def test_save_load_round_trip_is_exact(tmp_path):
    """The file keeps counts, float64 sums (bit for bit), tie count and settings."""
    rng = fresh_rng()
    stats = RankStats.from_token_stats(*random_token_stats(rng, 300, 1000), vocab_size=1000,
                                       meta={"model": "m", "context_length": 128})
    stats.sum_logp += rng.standard_normal(1000) * 1e-9 * (stats.count > 0)  # full float64 bits
    path = tmp_path / "s.npz"
    stats.save(path)
    back = RankStats.load(path)
    assert back.vocab_size == 1000
    np.testing.assert_array_equal(back.count, stats.count)
    np.testing.assert_array_equal(back.sum_logp, stats.sum_logp)
    assert back.n_tied == stats.n_tied and back.meta == stats.meta
    assert [p.name for p in tmp_path.iterdir()] == ["s.npz"]  # no temporary left behind


def _write_npz(path, **fields):
    with open(path, "wb") as f:
        np.savez(f, **fields)


def _valid_fields():
    return dict(format=np.array("rce-jax/RankStats"), version=np.array(1), vocab_size=np.array(5),
                ranks=np.array([0, 3]), count=np.array([2, 1]), sum_logp=np.array([-1.0, -3.0]),
                n_tied=np.array(0), meta=np.array("{}"))


def test_load_refuses_missing_corrupt_and_foreign_files(tmp_path):
    with pytest.raises(StatsFileError, match="no such RankStats file"):
        RankStats.load(tmp_path / "nope.npz")
    junk = tmp_path / "junk.npz"
    junk.write_bytes(os.urandom(300))
    with pytest.raises(StatsFileError, match="not a readable RankStats file"):
        RankStats.load(junk)
    good = tmp_path / "good.npz"
    _write_npz(good, **_valid_fields())
    assert RankStats.load(good).n_tokens == 3
    truncated = tmp_path / "truncated.npz"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(StatsFileError, match="not a readable RankStats file"):
        RankStats.load(truncated)
    for name, change, message in [
        ("version", {"version": np.array(2)}, "version 2; this rce-jax reads version 1"),
        ("format", {"format": np.array("something-else")}, "format 'something-else'"),
        ("ranks", {"ranks": np.array([3, 0])}, "not strictly increasing"),
        ("range", {"ranks": np.array([0, 5])}, r"within \[0, 5\)"),
        ("count", {"count": np.array([2, 0])}, "non-positive counts"),
        ("sums", {"sum_logp": np.array([-1.0, np.nan])}, "non-finite sums"),
        ("meta", {"meta": np.array("{not json")}, "meta is not JSON"),
        ("meta_list", {"meta": np.array("[1]")}, "meta is not a JSON object"),
        ("n_tied", {"n_tied": np.array(-1)}, "negative n_tied"),
    ]:
        path = tmp_path / f"{name}.npz"
        _write_npz(path, **{**_valid_fields(), **change})
        with pytest.raises(StatsFileError, match=message):
            RankStats.load(path)
    missing = {k: v for k, v in _valid_fields().items() if k != "count"}
    _write_npz(tmp_path / "missing.npz", **missing)
    with pytest.raises(StatsFileError, match=r"missing fields \['count'\]"):
        RankStats.load(tmp_path / "missing.npz")


def test_a_failed_save_keeps_the_previous_file(tmp_path, monkeypatch):
    """Writing goes to a temporary name: an error mid-write leaves the old file intact."""
    path = tmp_path / "s.npz"
    old = RankStats(3, [1, 0, 2], [-0.5, 0.0, -4.0])
    old.save(path)
    before = path.read_bytes()

    def explode(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(np, "savez_compressed", explode)
    with pytest.raises(OSError, match="disk full"):
        RankStats(3, [5, 5, 5], [-1.0, -1.0, -1.0]).save(path)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["s.npz"]


def test_saved_files_get_the_usual_permissions(tmp_path):
    """Files written through a temporary name get the permissions a plain open() would give
    (0666 less the umask), not the temporary file's private 0600."""
    old = os.umask(0o022)
    try:
        RankStats(3, [1, 0, 2], [-0.5, 0.0, -4.0]).save(tmp_path / "s.npz")
    finally:
        os.umask(old)
    assert oct(os.stat(tmp_path / "s.npz").st_mode & 0o777) == oct(0o644)


def test_sparse_view_and_json():
    stats = RankStats(6, [3, 0, 0, 1, 0, 0], [-0.3, 0, 0, -2.5, 0, 0], meta={"a": 1})
    assert stats.sparse() == {"ranks": [0, 3], "count": [3, 1], "sum_logp": [-0.3, -2.5]}
    d = stats.decompose().to_dict()
    json.dumps(d)
    assert d["ranks"] == [0, 3] and d["p"] == [0.75, 0.25]


def test_constructor_validates_shapes():
    with pytest.raises(ValueError, match=r"shape \(4,\)"):
        RankStats(4, [1, 2, 3], [0.0, 0.0, 0.0])
    with pytest.raises(ValueError, match="negative"):
        RankStats(2, [1, -1], [0.0, 0.0])
