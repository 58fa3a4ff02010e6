"""Shared pytest configuration: markers, and the seed of the tests' fresh random inputs.

Seeds. Tests draw fresh inputs on every run (``np_reference.fresh_rng``): the code must be
right on inputs no one chose. One session seed drives them all; it is printed in the header
and the summary of every run, and ``RCE_TEST_SEED=<seed>`` replays it. Each test's generator
is seeded by (session seed, the test's node id, how many generators the test drew before), so
replaying one test alone (``RCE_TEST_SEED=<seed> pytest 'tests/x.py::test_y'``) gives it the
same inputs as in the full run. The same seed is handed to Hypothesis (``--hypothesis-seed``),
unless that option is given itself. A failing test's report names the command that replays it.
"""

import os
import secrets

import pytest

SEED_VARIABLE = "RCE_TEST_SEED"


def session_seed() -> int:
    """The seed of this run: ``RCE_TEST_SEED`` if set, else a fresh one (set for the run)."""
    raw = os.environ.get(SEED_VARIABLE)
    if raw is None:
        raw = str(secrets.randbits(32))
        os.environ[SEED_VARIABLE] = raw  # subprocesses and later calls see the same seed
    try:
        return int(raw)
    except ValueError:
        raise pytest.UsageError(f"{SEED_VARIABLE} must be an integer, got {raw!r}") from None


def pytest_configure(config):
    config.addinivalue_line(
        "markers",
        "tfds: needs the optional tensorflow-datasets extra (pip install 'rce-jax[tfds]'); "
        "CI runs these in a separate step",
    )
    config.addinivalue_line(
        "markers",
        "harness: needs the optional harness extra (lm_eval[hf] and datasets: pip install "
        "'rce-jax[test,harness]'); CI runs these in a separate step",
    )
    seed = session_seed()
    if hasattr(config.option, "hypothesis_seed") and config.option.hypothesis_seed is None:
        config.option.hypothesis_seed = seed


def _seed_line() -> str:
    seed = session_seed()
    return f"rce-jax test seed: {seed} (replay: {SEED_VARIABLE}={seed})"


def pytest_report_header(config):
    return _seed_line()


def pytest_terminal_summary(terminalreporter):
    terminalreporter.write_line(_seed_line())


@pytest.fixture(autouse=True)
def _fresh_inputs_seed(request):
    """Point ``np_reference.fresh_rng`` at this test (see the module docstring)."""
    import np_reference

    np_reference.seed_for_test(session_seed(), request.node.nodeid)
    yield


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if report.failed:
        report.sections.append((
            "replay", f"{SEED_VARIABLE}={session_seed()} python -m pytest '{item.nodeid}'"))
