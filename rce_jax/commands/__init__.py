"""Subcommands of the ``rce-jax`` command line (see ``rce_jax.cli``)."""
