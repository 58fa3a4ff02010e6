"""Shared pytest configuration."""


def pytest_configure(config):
    config.addinivalue_line(
        "markers",
        "tfds: needs the optional tensorflow-datasets extra (pip install 'rce-jax[tfds]'); "
        "CI runs these in a separate step",
    )
