"""Host memory while loading a sharded checkpoint with rce_jax.models.from_pretrained.

    python experiments/load_memory.py --dir /tmp/ckpt_1gb --out out/load_memory

A command line over ``rce_jax.bench.load_memory`` (the same as ``python -m rce_jax.bench.load_memory``):
the module's docstring says what is measured and how; ``--help`` lists the options. Needs
rce-jax installed (``pip install -e .``), or ``PYTHONPATH=.:kernels`` in a checkout.
"""

from rce_jax.bench.load_memory import main
from rce_jax.cli import run_script

if __name__ == "__main__":
    run_script("experiments/load_memory.py", main)
