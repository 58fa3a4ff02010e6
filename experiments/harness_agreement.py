"""rce-jax against lm-evaluation-harness on real WikiText articles, in both conventions.

    python experiments/harness_agreement.py --raw wiki.test.raw --tokenizer DIR [--tokenizer DIR2]
        --articles 10 --context-length 64 --out harness_agreement

A command line over ``rce_jax.bench.harness_agreement`` (the same as ``python -m rce_jax.bench.harness_agreement``):
the module's docstring says what is measured and how; ``--help`` lists the options. Needs
rce-jax installed (``pip install -e .``), or ``PYTHONPATH=.:kernels`` in a checkout.
"""

from rce_jax.bench.harness_agreement import main

if __name__ == "__main__":
    raise SystemExit(main())
