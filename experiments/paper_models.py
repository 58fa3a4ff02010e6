"""The paper's model table on real checkpoints (issue 6, experiment a): the command line of
``rce_jax.paper.study`` (same as ``python -m rce_jax.paper.study``; ``--help`` for the options)::

    python experiments/paper_models.py --out runs/paper --models-dir /data/hf --dry-run
"""

from rce_jax.cli import run_script
from rce_jax.paper.study import main

if __name__ == "__main__":
    run_script("experiments/paper_models.py", main)
