"""How often do the fused token statistics disagree with materialised logits + token_stats?

    python experiments/fused_rank_mismatch.py [--T 2048 --d 128 --V 50257 --seeds 2] [--out DIR]

A command line over ``rce_jax.bench.rank_mismatch`` (the same as ``python -m rce_jax.bench.rank_mismatch``):
the module's docstring says what is measured and how; ``--help`` lists the options. Needs
rce-jax installed (``pip install -e .``), or ``PYTHONPATH=.:kernels`` in a checkout.
"""

from rce_jax.bench.rank_mismatch import main
from rce_jax.cli import run_script

if __name__ == "__main__":
    run_script("experiments/fused_rank_mismatch.py", main)
