"""Rolling windows: docs/design.md#6-windows and lm-evaluation-harness's loglikelihood_rolling, exactly."""

import numpy as np
import pytest

from data_helpers import harness_scored_tokens

from rce_jax.data import TokenizedCorpus, make_windows, rolling_windows, window_tokens


def our_scored_tokens(tokenized, seq_len, doc):
    windows = make_windows(tokenized, seq_len)
    out = []
    for w in np.flatnonzero(windows.doc == doc):
        start, length, m = int(windows.start[w]), int(windows.length[w]), int(windows.num_scored[w])
        inputs, targets = window_tokens(tokenized, doc, start, length)
        assert len(inputs) == length <= seq_len
        for pos in range(length - m, length):
            out.append((start + pos, inputs[: pos + 1].tolist(), int(targets[pos])))
    return out


def test_harness_gold_example():
    """The harness's own unit-test example (34 tokens, max_seq_len 10) gives the same four windows."""
    tokens = list(range(34))
    tc = TokenizedCorpus.from_token_lists([tokens], prefix_token=100)
    assert rolling_windows(34, 10) == [(0, 10, 10), (10, 10, 10), (20, 10, 10), (24, 10, 4)]
    want = [
        (list(range(-1, 9)), list(range(0, 10))),
        (list(range(9, 19)), list(range(10, 20))),
        (list(range(19, 29)), list(range(20, 30))),
        (list(range(23, 33)), list(range(30, 34))),
    ]
    for (start, length, m), (want_in, want_scored) in zip(rolling_windows(34, 10), want):
        inputs, targets = window_tokens(tc, 0, start, length)
        want_in = [100 if t == -1 else t for t in want_in]
        assert inputs.tolist() == want_in
        assert targets[length - m:].tolist() == want_scored


def test_matches_harness_on_many_random_lengths():
    """For random document lengths and context lengths, every scored token has the same model
    input (context) and target as in lm-evaluation-harness's rolling log-likelihood."""
    rng = np.random.default_rng(0)
    for trial in range(300):
        seq_len = int(rng.integers(1, 40))
        n_docs = int(rng.integers(1, 4))
        docs = [rng.integers(0, 1000, size=int(rng.integers(0, 4 * seq_len + 3))).tolist() for _ in range(n_docs)]
        if not any(docs):
            docs[0] = [5]
        tc = TokenizedCorpus.from_token_lists(docs, prefix_token=1000)
        for d, tokens in enumerate(docs):
            assert our_scored_tokens(tc, seq_len, d) == harness_scored_tokens(tokens, 1000, seq_len), (trial, d)


@pytest.mark.parametrize("seq_len", [1, 2, 3, 7, 16])
def test_design_section_6_rules(seq_len):
    """Window k reads s[kL:kL+L]; the last one reads L tokens s[n-L-1:n-1] and scores only new
    targets; a short document is one short window; each token is scored once, the prefix never."""
    for T in range(0, 5 * seq_len + 2):
        s = [-1] + list(range(T))  # s = [prefix] + tokens; token j is s[j + 1]
        n = len(s)
        windows = rolling_windows(T, seq_len)
        scored = []
        for k, (start, length, m) in enumerate(windows):
            reads, targets = s[start:start + length], s[start + 1:start + length + 1]
            if T <= seq_len:
                assert (start, length, m) == (0, T, T)
            elif (k + 1) * seq_len <= T:
                assert reads == s[k * seq_len:k * seq_len + seq_len] and m == seq_len
            else:
                assert k == len(windows) - 1 and reads == s[n - seq_len - 1:n - 1] and length == seq_len
            scored += targets[length - m:]
        assert scored == list(range(T))  # every token once, in order, never the prefix (-1)


def test_max_tokens_cuts_at_whole_documents():
    """max_tokens keeps documents in order until the count reaches it, the crossing document whole."""
    tc = TokenizedCorpus.from_token_lists([[1] * 5, [], [2] * 4, [3] * 6], prefix_token=0)
    assert make_windows(tc, 3).num_docs == 4
    for max_tokens, docs, scored in [(1, 1, 5), (5, 1, 5), (6, 3, 9), (9, 3, 9), (10, 4, 15), (999, 4, 15)]:
        w = make_windows(tc, 3, max_tokens=max_tokens)
        assert (w.num_docs, w.num_scored_tokens) == (docs, scored), max_tokens
    with pytest.raises(ValueError, match="--max-tokens must be a positive integer"):
        make_windows(tc, 3, max_tokens=0)


def test_empty_documents_and_bad_arguments():
    """Empty documents have no window; an all-empty corpus or a bad seq_len is an error."""
    tc = TokenizedCorpus.from_token_lists([[], [4, 5], []], prefix_token=0)
    w = make_windows(tc, 4)
    assert w.doc.tolist() == [1] and w.num_docs == 3
    assert rolling_windows(0, 4) == []
    with pytest.raises(ValueError, match="every document has zero tokens"):
        make_windows(TokenizedCorpus.from_token_lists([[], []], prefix_token=0), 4)
    for bad in (0, -1, 2.0, True):
        with pytest.raises(ValueError, match="seq_len must be a positive int"):
            make_windows(tc, bad)
