"""Word perplexity, byte perplexity and bits per byte, against a hand computation."""

import math

import pytest

from rce_jax.data import TextMetrics, count_bytes, count_words
from tolerances import F64_FEW_OPS_REL, F64_TWO_ROUTES_REL


@pytest.mark.parametrize(
    "text, words",
    [("a b c", 3), ("  a  b ", 4), ("", 1), ("one\ntwo\r\nthree\tfour", 4), ("x\u00a0y", 2), ("trailing\n", 2)],
)
def test_word_count_is_the_harness_regex_split(text, words):
    """count_words is len(re.split(r'\\s+', text)): edge white space adds empty words, '' is one word."""
    assert count_words(text) == words


def test_byte_count_is_utf8_length():
    """count_bytes counts UTF-8 bytes, not characters."""
    assert count_bytes("abc") == 3
    assert count_bytes("é☕𝄞") == 2 + 3 + 4
    assert count_bytes("") == 0


def test_metrics_match_a_hand_computation():
    """Aggregates are ratios of corpus sums: exp(-LL/words), exp(-LL/bytes), -LL/(bytes ln 2)."""
    # Two documents: log-likelihoods -7.5 and -12.25 nats; 4 + 6 words; 20 + 31 bytes; 9 tokens.
    sum_ll, words, nbytes = -7.5 + -12.25, 4 + 6, 20 + 31
    m = TextMetrics(sum_ll, 9, words, nbytes)
    assert m.word_perplexity == pytest.approx(math.exp(19.75 / 10), rel=F64_FEW_OPS_REL)
    assert m.byte_perplexity == pytest.approx(math.exp(19.75 / 51), rel=F64_FEW_OPS_REL)
    assert m.bits_per_byte == pytest.approx(19.75 / 51 / math.log(2), rel=F64_FEW_OPS_REL)
    assert m.token_perplexity == pytest.approx(math.exp(19.75 / 9), rel=F64_FEW_OPS_REL)
    assert math.log2(m.byte_perplexity) == pytest.approx(m.bits_per_byte, rel=F64_TWO_ROUTES_REL)
    d = m.as_dict()
    assert d["num_words"] == 10 and d["bits_per_byte"] == m.bits_per_byte


@pytest.mark.parametrize("args", [(float("nan"), 1, 1, 1), (-1.0, 0, 1, 1), (-1.0, 1, 0, 1), (-1.0, 1, 1, 0)])
def test_metrics_reject_degenerate_inputs(args):
    """A non-finite log-likelihood or a zero count is an error, not a silent inf/nan."""
    with pytest.raises(ValueError):
        TextMetrics(*args)
