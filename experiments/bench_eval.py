"""End-to-end evaluation throughput: ``rce-jax eval`` against transformers (PyTorch) computing
the same decomposition, and the share of the scoring step spent on the token statistics.

    python experiments/bench_eval.py --out out/bench_eval             # on a GPU
    python experiments/bench_eval.py --tiny --out out/bench_eval_cpu  # CPU smoke run

A command line over ``rce_jax.bench.eval`` (the same as ``python -m rce_jax.bench.eval``):
the module's docstring says what is measured and how; ``--help`` lists the options. Needs
rce-jax installed (``pip install -e .``), or ``PYTHONPATH=.:kernels`` in a checkout.
"""

from rce_jax.bench.eval import main
from rce_jax.cli import run_script

if __name__ == "__main__":
    run_script("experiments/bench_eval.py", main)
