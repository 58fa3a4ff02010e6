"""Independent float64 NumPy computations that the tests compare against.

Written from the definitions in docs/design.md, sharing no code with rce_jax: token statistics by brute
force over whole rows, and the decomposition by grouping tokens by rank in a dict.
"""

import math

import numpy as np


def np_token_stats(logits, targets):
    """(logp, rank, ties) per row, in float64, for targets within range."""
    z = np.asarray(logits, np.float64)
    t = np.asarray(targets)
    rows = np.arange(z.shape[0])
    z_y = z[rows, t]
    m = z.max(axis=1)
    lse = m + np.log(np.exp(z - m[:, None]).sum(axis=1))
    rank = (z > z_y[:, None]).sum(axis=1)
    ties = (z == z_y[:, None]).sum(axis=1) - 1
    return z_y - lse, rank, ties


def np_decompose(logp, rank):
    """CE, EE, SA, Conf and p, q by rank, from per-token log-probabilities and ranks."""
    groups = {}
    for lp, r in zip(np.asarray(logp, np.float64), np.asarray(rank)):
        groups.setdefault(int(r), []).append(float(lp))
    n = sum(len(v) for v in groups.values())
    p = {r: len(v) / n for r, v in groups.items()}
    Q = {r: math.exp(sum(v) / len(v)) for r, v in groups.items()}
    C = sum(Q.values())
    q = {r: Q[r] / C for r in groups}
    ee = -sum(pe * math.log(pe) for pe in p.values())
    sa = sum(p[r] * math.log(p[r] / q[r]) for r in groups)
    ce = -sum(sum(v) for v in groups.values()) / n
    return {"ce": ce, "ee": ee, "sa": sa, "conf": math.log(C), "n": n, "p": p, "q": q}


_TEST = {"seed": None, "node": "", "draws": 0}


def seed_for_test(session_seed: int, node_id: str) -> None:
    """Called by conftest before each test: the generators of ``fresh_rng`` derive from these."""
    _TEST.update(seed=session_seed, node=node_id, draws=0)


def fresh_rng():
    """A generator of fresh inputs, new on every run (the code must be right on inputs the tests
    never saw), replayable: seeded by (session seed, test node id, draws before in this test),
    see conftest.py. Prints what it was seeded with."""
    import zlib

    if _TEST["seed"] is None:  # outside pytest
        seed_for_test(int(np.random.SeedSequence().entropy % (2**32)), "")
    entropy = [_TEST["seed"], zlib.crc32(_TEST["node"].encode()), _TEST["draws"]]
    _TEST["draws"] += 1
    print(f"fresh_rng seed={entropy} (session seed {_TEST['seed']}; replay: RCE_TEST_SEED={_TEST['seed']})")
    return np.random.default_rng(entropy)
