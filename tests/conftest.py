"""Shared pytest configuration."""


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
