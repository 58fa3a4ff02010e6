"""rce-jax: rank-based decomposition of language-model cross-entropy."""
