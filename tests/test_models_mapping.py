"""The layout patterns of the weight maps: reading any block straight from the HF tensor
gives that block of our parameter, and export is the exact inverse of import."""

from __future__ import annotations

import numpy as np
import pytest

from rce_jax.models.mapping import parse_pattern

PATTERNS = {
    "o i -> i o": (6, 10),
    "(h k) d -> d h k": (10, 4, 3),
    "d (h k) -> h k d": (4, 3, 10),
    "(h t k) d -> d h t k": (8, 4, 3, 2),
    "d (t h k) -> d t h k": (8, 3, 4, 2),
    "(h t k) -> h t k": (4, 3, 2),
    "a b -> a b": (5, 7),
}


def _random_block(rng, shape):
    out = []
    for n in shape:
        a = int(rng.integers(0, n))
        b = int(rng.integers(a + 1, n + 1))
        out.append(slice(a, b))
    return tuple(out)


@pytest.mark.parametrize("pattern", list(PATTERNS))
def test_read_block_and_inverse(pattern):
    """For random parameters and 20 random rectangular blocks each, read_block (which reads
    only a contiguous row range of the HF tensor) equals slicing our full parameter, and
    to_hf followed by a full read is the identity; the HF layout is checked against an
    explicit NumPy reshape/transpose written here."""
    p = parse_pattern(pattern)
    shape = PATTERNS[pattern]
    rng = np.random.default_rng(0)
    ours = rng.standard_normal(shape).astype(np.float32)
    hf = p.to_hf(ours)
    assert hf.shape == p.hf_shape(shape)
    # Independent statement of the layout for two patterns.
    if pattern == "(h t k) d -> d h t k":
        np.testing.assert_array_equal(hf, ours.transpose(1, 2, 3, 0).reshape(24, 8))
    if pattern == "d (t h k) -> d t h k":
        np.testing.assert_array_equal(hf, ours.reshape(8, 24))
    reads = []

    def read(index):
        reads.append(index)
        return hf[index]

    np.testing.assert_array_equal(p.read_block(read, shape, None), ours)
    for _ in range(20):
        block = _random_block(rng, shape)
        np.testing.assert_array_equal(p.read_block(read, shape, block), ours[block])
    assert all(isinstance(s, slice) and s.step is None for idx in reads for s in idx)


def test_bad_patterns():
    """A pattern must name the same axes on both sides."""
    with pytest.raises(ValueError):
        parse_pattern("(h k) d -> d h")
    with pytest.raises(ValueError):
        parse_pattern("a b")
