"""The decoder-only LM shared by all families (family differences are config switches).

Parameter tree (paths used by the weight maps and the sharding rules):
  embed.embedding            [V, E]   token embedding (E = word_embed_proj_dim, = D except OPT-350m)
  pos_embed.embedding        [P, D]   learned positions (gpt2, opt; OPT's table has P = max + 2)
  project_in.kernel          [E, D]   opt when E != D
  layers.{i}.attn_norm.{scale,bias}, layers.{i}.mlp_norm.{scale,bias}
  layers.{i}.attn.{q,k,v,qkv,o}.{kernel,bias}   (see attention.py for the layouts)
  layers.{i}.mlp.{gate,up,down}.{kernel,bias}
  final_norm.{scale,bias}
  project_out.kernel         [D, E]   opt when E != D
  unembed                    [V, E]   the LM head when the embeddings are untied

Use under jit: `forward_hidden(graphdef, state, ids)` / `forward_logits(...)` below, or
`nnx.merge(graphdef, state)` inside your own jitted function (docs/usage.md#multi-host shows the split).
"""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
from flax import nnx

from rce_jax.models.attention import Attention, attention_mask, segment_positions
from rce_jax.models.config import ModelConfig
from rce_jax.models.layers import (Embed, GatedMLP, Linear, MLP, make_norm, param, rope_angles,
                                   rope_inv_freq)

_LAYOUTS = {"gpt2": "fused_thk", "gpt_neox": "fused_htk"}


class Block(nnx.Module):
    """One decoder layer: pre-LN (default), post-LN (OPT-350m) or parallel residual (NeoX)."""

    def __init__(self, config: ModelConfig, layer_idx: int, *, dtype, param_dtype,
                 attention_impl: str):
        c = config
        std = c.initializer_range
        # GPT-2 scales the residual output projections by 1/sqrt(2 * n_layer) at init.
        out_std = std / math.sqrt(2 * c.num_layers) if c.family == "gpt2" else std
        kw = dict(dtype=dtype, param_dtype=param_dtype)
        self.attn_norm = make_norm(c.norm_type, c.hidden_size, eps=c.norm_eps, **kw)
        self.attn = Attention(c, layer_idx, layout=_LAYOUTS.get(c.family, "separate"),
                              out_std=out_std, impl=attention_impl, **kw)
        self.mlp_norm = make_norm(c.norm_type, c.hidden_size, eps=c.norm_eps, **kw)
        mlp_cls = GatedMLP if c.gated_mlp else MLP
        self.mlp = mlp_cls(c.hidden_size, c.intermediate_size, activation=c.activation,
                           use_bias=c.mlp_bias, std=std, out_std=out_std, **kw)
        self.parallel_residual = c.parallel_residual
        self.pre_layer_norm = c.pre_layer_norm
        self.window = c.window_for_layer(layer_idx)

    def __call__(self, x, mask, cos_sin):
        if self.parallel_residual:
            return x + self.attn(self.attn_norm(x), mask, cos_sin) + self.mlp(self.mlp_norm(x))
        if self.pre_layer_norm:
            x = x + self.attn(self.attn_norm(x), mask, cos_sin)
            return x + self.mlp(self.mlp_norm(x))
        x = self.attn_norm(x + self.attn(x, mask, cos_sin))
        return self.mlp_norm(x + self.mlp(x))


class CausalLM(nnx.Module):
    """A causal LM of any supported family. `dtype`: computation; `param_dtype`: storage.

    Construct it through `init_model` (random) or `from_pretrained`: the constructor itself
    only declares the parameters (placeholder values plus their init rules).
    """

    def __init__(self, config: ModelConfig, *, dtype=jnp.float32, param_dtype=None,
                 attention_impl: str = "einsum"):
        c = config
        param_dtype = dtype if param_dtype is None else param_dtype
        kw = dict(dtype=dtype, param_dtype=param_dtype)
        std = c.initializer_range
        D, E = c.hidden_size, c.word_embed_proj_dim
        self.config = c
        self.dtype = dtype
        self.embed = Embed(c.vocab_size, E, std=std, **kw)
        self.pos_embed = (Embed(c.num_position_embeddings, D, std=std, **kw)
                          if c.learned_positions else None)
        self.project_in = (Linear((E,), (D,), use_bias=False, std=std, **kw)
                           if E != D else None)
        self.layers = nnx.List([Block(c, i, attention_impl=attention_impl, **kw)
                                for i in range(c.num_layers)])
        self.final_norm = make_norm(c.norm_type, D, eps=c.norm_eps, **kw) if c.final_norm else None
        self.project_out = (Linear((D,), (E,), use_bias=False, std=std, **kw)
                            if E != D else None)
        self.unembed = (None if c.tie_word_embeddings else
                        param((c.vocab_size, E), param_dtype, ("normal", std)))

    def hidden_states(self, input_ids_BxL, *, positions_BxL=None, segment_ids_BxL=None):
        """Final hidden states [B, L, E] (after the final norm and OPT's project_out).

        segment_ids_BxL: packed rows; attention never crosses segments. positions_BxL:
        defaults to positions restarting at every segment (plain arange without segments).
        """
        c = self.config
        B, L = input_ids_BxL.shape
        if segment_ids_BxL is None:
            segment_ids_BxL = jnp.zeros((B, L), jnp.int32)
            if positions_BxL is None:
                positions_BxL = jnp.broadcast_to(jnp.arange(L, dtype=jnp.int32), (B, L))
        elif positions_BxL is None:
            positions_BxL = segment_positions(segment_ids_BxL)
        if c.learned_positions and L > c.max_position_embeddings:
            raise ValueError(f"sequence length {L} exceeds max_position_embeddings="
                             f"{c.max_position_embeddings} of this {c.family} model")
        x = self.embed(input_ids_BxL)
        if self.project_in is not None:
            x = self.project_in(x)
        if self.pos_embed is not None:
            x = x + self.pos_embed(positions_BxL + c.position_offset)
        cos_sin = (rope_angles(positions_BxL, rope_inv_freq(c.rope, c.rotary_dim))
                   if c.rope is not None else None)
        masks = {w: attention_mask(segment_ids_BxL, w) for w in {b.window for b in self.layers}}
        for block in self.layers:
            x = block(x, masks[block.window], cos_sin)
        if self.final_norm is not None:
            x = self.final_norm(x)
        if self.project_out is not None:
            x = self.project_out(x)
        return x

    def lm_head(self):
        """(W [V, E], bias [V] or None): logits = hidden @ W.T (+ bias). Tied models return the
        token embedding itself."""
        w = self.embed.embedding[...] if self.unembed is None else self.unembed[...]
        return w, None

    def logits(self, input_ids_BxL, *, positions_BxL=None, segment_ids_BxL=None):
        """Logits [B, L, V] in the computation dtype, as the model produces them."""
        h = self.hidden_states(input_ids_BxL, positions_BxL=positions_BxL,
                               segment_ids_BxL=segment_ids_BxL)
        w, b = self.lm_head()
        out = jnp.einsum("ble,ve->blv", h, w.astype(self.dtype))
        return out if b is None else out + b.astype(self.dtype)


@functools.partial(jax.jit, static_argnums=0)
def forward_hidden(graphdef, state, input_ids_BxL, positions_BxL=None, segment_ids_BxL=None):
    """Jitted `hidden_states` of the model nnx.split into (graphdef, state)."""
    return nnx.merge(graphdef, state).hidden_states(
        input_ids_BxL, positions_BxL=positions_BxL, segment_ids_BxL=segment_ids_BxL)


@functools.partial(jax.jit, static_argnums=0)
def forward_logits(graphdef, state, input_ids_BxL, positions_BxL=None, segment_ids_BxL=None):
    """Jitted `logits` of the model nnx.split into (graphdef, state)."""
    return nnx.merge(graphdef, state).logits(
        input_ids_BxL, positions_BxL=positions_BxL, segment_ids_BxL=segment_ids_BxL)


def compute_logits(model: CausalLM, input_ids_BxL, *, positions_BxL=None, segment_ids_BxL=None):
    """Convenience: split the model and call the jitted `forward_logits`."""
    graphdef, state = nnx.split(model)
    return forward_logits(graphdef, state, input_ids_BxL, positions_BxL, segment_ids_BxL)
