"""Creating models: abstract (shapes only), randomly initialised (sharded on creation), counts."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from jax.sharding import Mesh

from rce_jax.models.config import ModelConfig
from rce_jax.models.transformer import CausalLM
from rce_jax.sharding import param_sharding, path_str


def abstract_model(config: ModelConfig, *, dtype=jnp.float32, param_dtype=None,
                   attention_impl: str = "einsum") -> CausalLM:
    """The model with ShapeDtypeStruct leaves: nothing is allocated."""
    return nnx.eval_shape(lambda: CausalLM(config, dtype=dtype, param_dtype=param_dtype,
                                           attention_impl=attention_impl))


def _initial_value(rule: tuple, shape, seed: int, index: int) -> np.ndarray:
    if rule[0] == "normal":
        rng = np.random.default_rng([seed, index])  # one independent stream per parameter
        return rng.standard_normal(shape, dtype=np.float32) * np.float32(rule[1])
    if rule[0] in ("zeros", "ones"):
        return (np.ones if rule[0] == "ones" else np.zeros)(shape, np.float32)
    raise ValueError(f"unknown init rule {rule!r}")


def init_model(config: ModelConfig, *, seed: int = 0, dtype=jnp.float32, param_dtype=None,
               mesh: Mesh | None = None, attention_impl: str = "einsum") -> CausalLM:
    """A randomly initialised model, as transformers initialises one: weights and embeddings
    N(0, initializer_range^2) (GPT-2's residual output projections / sqrt(2 n_layer)),
    biases 0, norm scales 1.

    Values are drawn on the host with NumPy (one stream per parameter, from `seed`), so they
    do not depend on the mesh or the number of processes, and each parameter is placed
    directly in its sharding (jax.make_array_from_callback); the host holds one parameter
    at a time.
    """
    param_dtype = jnp.dtype(dtype if param_dtype is None else param_dtype)
    graphdef, abstract_state = nnx.split(abstract_model(
        config, dtype=dtype, param_dtype=param_dtype, attention_impl=attention_impl))
    out = []
    for i, (p, v) in enumerate(nnx.to_flat_state(abstract_state)):
        path, shape = path_str(p), tuple(v.get_value().shape)
        full = _initial_value(v.get_metadata()["init_rule"], shape, seed, i).astype(param_dtype)
        arr = jax.make_array_from_callback(shape, param_sharding(path, shape, config.family, mesh),
                                           lambda index, full=full: full[index], dtype=param_dtype)
        out.append((p, v.replace(value=arr)))
        del full
    return nnx.merge(graphdef, nnx.from_flat_state(out))


def param_counts(model: CausalLM, config: ModelConfig) -> dict[str, int]:
    """{"total", "non_embedding"}: a tied embedding is one parameter, counted once.

    non_embedding = total - token embedding - learned position embedding - untied LM head
    (OPT's project_in / project_out are linear maps and count as non-embedding).
    """
    if model.config != config:
        raise ValueError("param_counts: the model was built from a different config")
    total = embedding = 0
    for path, v in nnx.to_flat_state(nnx.state(model, nnx.Param)):
        size = math.prod(v.get_value().shape)
        total += size
        if path_str(path) in ("embed.embedding", "pos_embed.embedding", "unembed"):
            embedding += size
    return {"total": total, "non_embedding": total - embedding}
