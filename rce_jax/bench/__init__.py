"""Benchmark harnesses of the whole pipeline (evaluation, forward, train step, bootstrap,
memory), beside the kernels' own benchmark ``rce_kernels.bench``. Each module has a ``main``;
run one as ``python -m rce_jax.bench.<name>`` (the scripts under ``experiments/`` call the same
``main``). They print ratios measured within one run; no test times anything."""
