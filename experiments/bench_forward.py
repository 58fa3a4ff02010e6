"""Forward throughput: rce_jax (jit) against transformers (PyTorch, sdpa) on one device.

    python experiments/bench_forward.py --out out/bench_forward            # on a GPU
    python experiments/bench_forward.py --tiny --out out/bench_forward_cpu  # anywhere

A command line over ``rce_jax.bench.forward`` (the same as ``python -m rce_jax.bench.forward``):
the module's docstring says what is measured and how; ``--help`` lists the options. Needs
rce-jax installed (``pip install -e .``), or ``PYTHONPATH=.:kernels`` in a checkout.
"""

from rce_jax.bench.forward import main
from rce_jax.cli import run_script

if __name__ == "__main__":
    run_script("experiments/bench_forward.py", main)
