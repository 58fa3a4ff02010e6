"""Train-step time of the proxy loss against plain cross-entropy, and training tokens/s.

    python experiments/bench_train_step.py                      # CPU: the demo's largest model
    python experiments/bench_train_step.py --preset 125m --vocab 50304 --batch-size 16 \
        --context-length 1024 --dtype bfloat16 --attention-impl cudnn   # GPU: a 125M-class model

A command line over ``rce_jax.bench.train_step`` (the same as ``python -m rce_jax.bench.train_step``):
the module's docstring says what is measured and how; ``--help`` lists the options. Needs
rce-jax installed (``pip install -e .``), or ``PYTHONPATH=.:kernels`` in a checkout.
"""

from rce_jax.bench.train_step import main
from rce_jax.cli import run_script

if __name__ == "__main__":
    run_script("experiments/bench_train_step.py", main)
