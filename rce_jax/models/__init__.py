"""Flax NNX ports of the paper's model families, loading Hugging Face checkpoints.

    model, config, tokenizer = from_pretrained("path/or/cached-repo-id", dtype=jnp.bfloat16,
                                               mesh=make_mesh(model=4))
    hidden_BxLxD = model.hidden_states(ids_BxL)          # or forward_hidden(graphdef, state, ids)
    W_VxD, bias = model.lm_head()
"""

from rce_jax.models.build import abstract_model, init_model, param_counts
from rce_jax.models.checkpoint import Checkpoint, CheckpointError
from rce_jax.models.config import FAMILIES, ModelConfig, RopeConfig, UnsupportedConfigError
from rce_jax.models.export import save_pretrained
from rce_jax.models.loading import from_pretrained, load_config, resolve_model_dir, stored_dtype
from rce_jax.models.transformer import CausalLM, compute_logits, forward_hidden, forward_logits

__all__ = [
    "FAMILIES", "CausalLM", "Checkpoint", "CheckpointError", "ModelConfig", "RopeConfig",
    "UnsupportedConfigError", "abstract_model", "compute_logits", "forward_hidden",
    "forward_logits", "from_pretrained", "init_model", "load_config", "param_counts", "stored_dtype",
    "resolve_model_dir", "save_pretrained",
]
