"""Peak scratch memory of the pure-JAX token statistics, from XLA's own buffer assignment.

    python experiments/token_stats_memory.py [--out DIR]

A command line over ``rce_jax.bench.token_stats_memory`` (the same as ``python -m rce_jax.bench.token_stats_memory``):
the module's docstring says what is measured and how; ``--help`` lists the options. Needs
rce-jax installed (``pip install -e .``), or ``PYTHONPATH=.:kernels`` in a checkout.
"""

from rce_jax.bench.token_stats_memory import main
from rce_jax.cli import run_script

if __name__ == "__main__":
    run_script("experiments/token_stats_memory.py", main)
