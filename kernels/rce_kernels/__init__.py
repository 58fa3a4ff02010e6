"""Pallas kernels for rce-jax (importable on its own; needs only JAX)."""
