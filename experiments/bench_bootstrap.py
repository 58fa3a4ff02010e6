"""What the document bootstrap costs an evaluation (``--bootstrap 0`` against B replicates).

    python experiments/bench_bootstrap.py --tiny --out out/bench_bootstrap_cpu   # CPU, 40.5 s measured
    python experiments/bench_bootstrap.py --out out/bench_bootstrap              # on a GPU

A command line over ``rce_jax.bench.bootstrap`` (the same as ``python -m rce_jax.bench.bootstrap``):
the module's docstring says what is measured and how; ``--help`` lists the options. Needs
rce-jax installed (``pip install -e .``), or ``PYTHONPATH=.:kernels`` in a checkout.
"""

from rce_jax.bench.bootstrap import main
from rce_jax.cli import run_script

if __name__ == "__main__":
    run_script("experiments/bench_bootstrap.py", main)
