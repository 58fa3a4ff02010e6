"""Fit on the smaller models, forecast the larger: the error-entropy law against the CE laws.

    python experiments/extrapolation.py runs/paper/scaling.json --out runs/paper/extrapolation
    python experiments/extrapolation.py results/ --out extrap --holdout 3 --n total

A command line over ``rce_jax.paper.extrapolation`` (the same as ``python -m rce_jax.paper.extrapolation``):
the module's docstring says what is measured and how; ``--help`` lists the options. Needs
rce-jax installed (``pip install -e .``), or ``PYTHONPATH=.:kernels`` in a checkout.
"""

from rce_jax.paper.extrapolation import main
from rce_jax.cli import run_script

if __name__ == "__main__":
    run_script("experiments/extrapolation.py", main)
