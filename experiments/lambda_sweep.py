"""What the proxy loss L = CE + lam * Conf does to held-out CE, EE, SA and Conf, at fixed compute.

    python experiments/lambda_sweep.py --out out/lambda_sweep            # CPU, 4 min 19 s a seed measured (2 seeds by default)
    python experiments/lambda_sweep.py --tiny --out out/lambda_sweep_tiny  # CPU smoke test, 36.7 s measured

A command line over ``rce_jax.train.sweep`` (the same as ``python -m rce_jax.train.sweep``):
the module's docstring says what is measured and how; ``--help`` lists the options. Needs
rce-jax installed (``pip install -e .``), or ``PYTHONPATH=.:kernels`` in a checkout.
"""

from rce_jax.train.sweep import main
from rce_jax.cli import run_script

if __name__ == "__main__":
    run_script("experiments/lambda_sweep.py", main)
