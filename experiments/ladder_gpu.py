"""The identical-recipe ladder at GPU scale: seven Llama-style models, one recipe, on one GPU.

    python experiments/ladder_gpu.py --train PATH_OR_SPEC [--train ...] --out out/ladder_gpu
    python experiments/ladder_gpu.py --tiny --out out/ladder_gpu_tiny     # CPU check, 45.7 s measured

A command line over ``rce_jax.train.gpu_ladder`` (the same as ``python -m rce_jax.train.gpu_ladder``):
the module's docstring says what is measured and how; ``--help`` lists the options. Needs
rce-jax installed (``pip install -e .``), or ``PYTHONPATH=.:kernels`` in a checkout.
"""

from rce_jax.train.gpu_ladder import main
from rce_jax.cli import run_script

if __name__ == "__main__":
    run_script("experiments/ladder_gpu.py", main)
