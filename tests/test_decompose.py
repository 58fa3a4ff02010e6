"""rce_jax.decompose and rce_jax.token_stats against an independent float64 NumPy computation."""

import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from np_reference import fresh_rng, np_decompose, np_token_stats

import rce_jax
from tolerances import (DECOMPOSITION_F32_ABS, EE_FROM_COUNTS_ABS, F64_DIVISION_ABS,
                        F64_IDENTITY_ABS, F64_NONNEGATIVE_SLACK, F64_PROBABILITY_SUM_ABS,
                        Q_F32_FLOOR_ABS, Q_F32_REL)


def random_logits(rng, shape, scale=3.0):
    return (rng.standard_normal(shape) * scale).astype(np.float32)


def assert_matches_numpy(dec, logits, targets, mask=None, atol=DECOMPOSITION_F32_ABS):
    """Compare a Decomposition with the float64 NumPy decomposition of the same tokens."""
    z = np.asarray(jnp.asarray(logits).astype(jnp.float32), np.float64)
    z = z.reshape(-1, z.shape[-1])
    t = np.asarray(targets).reshape(-1)
    keep = np.ones(t.shape, bool) if mask is None else np.asarray(mask).reshape(-1)
    logp, rank, _ = np_token_stats(z[keep], t[keep])
    ref = np_decompose(logp, rank)
    assert dec.n_tokens == ref["n"]
    for r, pe in ref["p"].items():  # p depends on counts only: float64-exact
        assert dec.p[r] == pytest.approx(pe, abs=F64_DIVISION_ABS)
    assert dec.p.sum() == pytest.approx(1.0, abs=F64_PROBABILITY_SUM_ABS)
    assert set(dec.ranks.tolist()) == set(ref["p"])
    assert dec.ee == pytest.approx(ref["ee"], abs=EE_FROM_COUNTS_ABS)
    for key in ("ce", "sa", "conf"):
        assert getattr(dec, key) == pytest.approx(ref[key], abs=atol), key
    for r, qe in ref["q"].items():
        assert dec.q[r] == pytest.approx(qe, rel=Q_F32_REL, abs=Q_F32_FLOOR_ABS)


@pytest.mark.parametrize("V", [7, 1000, 50257])
def test_identity_holds_to_float64_rounding(V):
    """CE = EE + SA - Conf to F64_IDENTITY_ABS on fresh random logits, for small and GPT-2-sized vocabularies."""
    rng = fresh_rng()
    T = 512 if V < 50257 else 128
    logits = random_logits(rng, (T, V))
    # Push some targets to the top so that low ranks are populated as in a real model.
    targets = rng.integers(0, V, T)
    top = rng.random(T) < 0.4
    targets[top] = logits[top].argmax(axis=1)
    dec = rce_jax.decompose(logits, targets)
    assert abs(dec.ce - (dec.ee + dec.sa - dec.conf)) <= F64_IDENTITY_ABS
    assert dec.sa >= -F64_NONNEGATIVE_SLACK and dec.ee >= 0.0


def test_float32_logits_match_numpy():
    """Random float32 logits: every quantity equals the float64 NumPy computation."""
    rng = fresh_rng()
    logits = random_logits(rng, (300, 1000))
    targets = rng.integers(0, 1000, 300)
    assert_matches_numpy(rce_jax.decompose(logits, targets), logits, targets)


def test_ties_count_in_the_targets_favour():
    """Rounded logits tie often; rank counts strictly greater entries and ties are reported."""
    rng = fresh_rng()
    logits = np.round(random_logits(rng, (400, 300), scale=1.5))
    targets = rng.integers(0, 300, 400)
    dec = rce_jax.decompose(logits, targets)
    assert_matches_numpy(dec, logits, targets)
    _, rank, ties = rce_jax.token_stats(logits, targets)
    _, np_rank, np_ties = np_token_stats(logits, targets)
    np.testing.assert_array_equal(rank, np_rank)
    np.testing.assert_array_equal(ties, np_ties)
    assert np_ties.max() > 0  # the case really has ties


def test_minus_inf_entries_are_ranked_and_excluded_from_the_softmax():
    """-inf logits (banned tokens) are never greater than a finite target and add no mass."""
    rng = fresh_rng()
    logits = random_logits(rng, (200, 500))
    banned = rng.random((200, 500)) < 0.3
    targets = rng.integers(0, 500, 200)
    banned[np.arange(200), targets] = False
    logits[banned] = -np.inf
    assert_matches_numpy(rce_jax.decompose(logits, targets), logits, targets)


def test_mask_selects_the_scored_tokens():
    """Masked tokens contribute nothing, and their targets may hold any value (e.g. -100)."""
    rng = fresh_rng()
    logits = random_logits(rng, (4, 50, 300))
    targets = rng.integers(0, 300, (4, 50))
    mask = rng.random((4, 50)) < 0.6
    targets[~mask] = -100
    assert_matches_numpy(rce_jax.decompose(logits, targets, mask), logits, targets, mask)


def test_bf16_logits_are_ranked_as_given():
    """bf16 logits are ranked on their bf16 values (many ties), log s computed in float32."""
    rng = fresh_rng()
    logits = jnp.asarray(random_logits(rng, (256, 2000)), jnp.bfloat16)
    targets = rng.integers(0, 2000, 256)
    dec = rce_jax.decompose(logits, targets)
    assert_matches_numpy(dec, logits, targets)
    logp, rank, _ = rce_jax.token_stats(logits, targets)
    assert logp.dtype == jnp.float32
    np.testing.assert_array_equal(rank, np_token_stats(np.asarray(logits.astype(jnp.float32)), targets)[1])


def test_batched_input_equals_flattened_input():
    """[B, L, V] input gives the same decomposition as the same tokens as [B*L, V]."""
    rng = fresh_rng()
    logits = random_logits(rng, (3, 40, 257))
    targets = rng.integers(0, 257, (3, 40))
    a = rce_jax.decompose(logits, targets)
    b = rce_jax.decompose(logits.reshape(120, 257), targets.reshape(120))
    np.testing.assert_array_equal(a.p, b.p)
    assert a.ce == b.ce and a.sa == b.sa and a.conf == b.conf
    assert_matches_numpy(a, logits, targets)


def test_vocab_limit_ranks_and_normalises_over_the_tokenizer_vocabulary():
    """vocab_limit drops padded embedding rows from both the ranking and the softmax."""
    rng = fresh_rng()
    logits = random_logits(rng, (100, 64))
    targets = rng.integers(0, 50, 100)
    dec = rce_jax.decompose(logits, targets, vocab_limit=50)
    assert dec.vocab_size == 50
    assert_matches_numpy(dec, logits[:, :50], targets)


@settings(max_examples=80, deadline=None)
@given(
    T=st.integers(1, 24),
    V=st.integers(1, 12),
    seed=st.integers(0, 2**32 - 1),
    spread=st.integers(0, 4),
)
def test_property_small_cases(T, V, seed, spread):
    """On small random cases with many ties: NumPy agreement, the identity, EE >= 0, SA >= 0.

    Every case is embedded in one fixed [24, 12] shape (rows past T masked, columns past V at
    -inf, which neither outranks a finite target nor adds probability mass) so that the
    examples share one compilation.
    """
    rng = np.random.default_rng(seed)
    logits = rng.integers(-spread, spread + 1, (T, V)).astype(np.float32)
    targets = rng.integers(0, V, T)
    mask = rng.random(T) < 0.7
    mask[rng.integers(0, T)] = True
    padded = np.full((24, 12), -np.inf, np.float32)
    padded[:T, :V] = logits
    padded_targets = np.zeros(24, np.int64)
    padded_targets[:T] = targets
    padded_mask = np.zeros(24, bool)
    padded_mask[:T] = mask
    dec = rce_jax.decompose(padded, padded_targets, padded_mask)
    assert_matches_numpy(dec, logits, targets, mask)
    assert abs(dec.identity_residual) <= F64_IDENTITY_ABS
    assert dec.ee >= 0.0 and dec.sa >= -F64_NONNEGATIVE_SLACK
    assert dec.ee <= np.log(dec.ranks.size) + EE_FROM_COUNTS_ABS


# ---- bad input ---------------------------------------------------------------------------


def test_out_of_range_targets_are_refused():
    logits = np.zeros((4, 10), np.float32)
    with pytest.raises(ValueError, match=r"outside \[0, 10\).*value 10"):
        rce_jax.decompose(logits, np.array([0, 1, 10, 2]))
    with pytest.raises(ValueError, match=r"outside \[0, 10\).*value -1"):
        rce_jax.token_stats(logits, np.array([0, -1, 3, 2]))


def test_shape_mismatch_is_refused():
    with pytest.raises(ValueError, match="does not match logits shape"):
        rce_jax.decompose(np.zeros((4, 10), np.float32), np.zeros(5, np.int32))
    with pytest.raises(ValueError, match="mask shape"):
        rce_jax.decompose(np.zeros((4, 10), np.float32), np.zeros(4, np.int32), np.ones(3, bool))
    with pytest.raises(ValueError, match=r"\[T, V\] or \[B, L, V\]"):
        rce_jax.decompose(np.zeros(10, np.float32), np.zeros((), np.int32))
    with pytest.raises(ValueError, match="targets must be integers"):
        rce_jax.decompose(np.zeros((4, 10), np.float32), np.zeros(4, np.float32))


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_nan_and_plus_inf_logits_are_refused(bad):
    logits = np.random.default_rng(0).standard_normal((6, 10)).astype(np.float32)
    logits[2, 4] = bad
    with pytest.raises(ValueError, match=r"1 scored token\(s\) have NaN or \+inf logits"):
        rce_jax.decompose(logits, np.arange(6))


def test_bad_rows_under_a_mask_are_ignored():
    """A NaN row that is masked out (padding) does not stop the decomposition."""
    logits = np.random.default_rng(0).standard_normal((6, 10)).astype(np.float32)
    logits[2] = np.nan
    mask = np.array([1, 1, 0, 1, 1, 1], bool)
    dec = rce_jax.decompose(logits, np.arange(6), mask)
    assert dec.n_tokens == 5


def test_minus_inf_target_logit_is_refused():
    logits = np.zeros((3, 5), np.float32)
    logits[1, 2] = -np.inf
    with pytest.raises(ValueError, match="target logit of -inf"):
        rce_jax.decompose(logits, np.array([0, 2, 1]))


def test_all_masked_is_refused():
    with pytest.raises(ValueError, match="all tokens are masked"):
        rce_jax.decompose(np.zeros((3, 5), np.float32), np.zeros(3, np.int32), np.zeros(3, bool))


def test_certain_predictions_decompose_without_crashing():
    """Logits so peaked that every target's float32 probability is exactly 1 give CE = EE = SA =
    Conf = 0; the EE share (0/0) is NaN, and printing and serialising the result still work."""
    logits = np.full((4, 6), -100.0, np.float32)
    targets = np.array([0, 3, 5, 1])
    logits[np.arange(4), targets] = 100.0
    dec = rce_jax.decompose(logits, targets)
    assert dec.ce == 0.0 and dec.ee == 0.0 and dec.sa == 0.0 and dec.conf == 0.0
    assert np.isnan(dec.ee_share)
    assert np.isnan(dec.to_dict()["ee_share"]) and "ee_share=nan" in repr(dec)


def test_repr_names_are_the_attributes():
    """Every ``name=value`` the printout of a Decomposition shows is an attribute of that name
    holding that value (to the printed digits: 6 decimals for the parts, 4 for the shares)."""
    rng = fresh_rng()
    logits = rng.standard_normal((40, 9)).astype(np.float32)
    targets = rng.integers(0, 9, 40)
    dec = rce_jax.decompose(logits, targets)
    import re

    pairs = re.findall(r"(\w+)=([-+0-9.e]+|nan)", repr(dec))
    assert {k for k, _ in pairs} >= {"ce", "ee", "sa", "conf", "ee_share", "top1", "n_tokens", "vocab_size"}
    for name, text in pairs:
        value = getattr(dec, name)  # AttributeError here is the bug this test guards against
        digits = len(text.partition(".")[2]) if "." in text else 0
        assert abs(float(value) - float(text)) <= 0.5 * 10.0 ** -digits, (name, value, text)
