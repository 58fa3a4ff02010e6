"""Multi-head / grouped-query causal self-attention shared by every family.

Masking: a query attends to a key iff key index <= query index, both tokens carry
the same segment id (packed rows never attend across documents), and, for
sliding-window layers, query index - key index < window (the key is among the
`window` most recent tokens, the query included, as in transformers).

Projection layouts (the only family difference), all with the output map
o: [H, K, D]:
  "separate"    q: [D, H, K], k and v: [D, G, K]   (OPT, Llama, Mistral, Qwen2)
  "fused_thk"   qkv: [D, 3, H, K]                   (GPT-2 c_attn: q, k, v blocks)
  "fused_htk"   qkv: [D, H, 3, K]                   (GPT-NeoX: interleaved per head)

Implementations: "einsum" (ours: scores and softmax in float32), or "xla" / "cudnn"
through `jax.nn.dot_product_attention` (cudnn needs a GPU and bf16/fp16).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from rce_jax.models.config import ModelConfig
from rce_jax.models.layers import Linear, apply_rope

ATTENTION_IMPLS = ("einsum", "xla", "cudnn")


def segment_positions(segment_ids_BxL: jax.Array) -> jax.Array:
    """Positions that restart at 0 at every segment boundary (segments are contiguous runs)."""
    L = segment_ids_BxL.shape[1]
    idx = jnp.broadcast_to(jnp.arange(L, dtype=jnp.int32), segment_ids_BxL.shape)
    starts = jnp.concatenate(
        [jnp.ones_like(segment_ids_BxL[:, :1], bool), segment_ids_BxL[:, 1:] != segment_ids_BxL[:, :-1]],
        axis=1)
    start_idx = jax.lax.cummax(jnp.where(starts, idx, 0), axis=1)
    return idx - start_idx


def attention_mask(segment_ids_BxL: jax.Array, window: int | None) -> jax.Array:
    """Boolean mask [B, L(query), L(key)]: causal, same segment, optional sliding window."""
    L = segment_ids_BxL.shape[1]
    q = jnp.arange(L)[:, None]
    k = jnp.arange(L)[None, :]
    allowed = k <= q
    if window is not None:
        allowed = allowed & (q - k < window)
    same = segment_ids_BxL[:, :, None] == segment_ids_BxL[:, None, :]
    return allowed[None] & same


def attention_core(q_BxLxHxK, k_BxLxGxK, v_BxLxGxK, mask_BxLxL, *, scale: float, impl: str):
    """softmax(q k^T * scale + mask) v with grouped KV heads (query head h uses KV head h // (H/G))."""
    B, L, H, K = q_BxLxHxK.shape
    G = k_BxLxGxK.shape[2]
    if impl in ("xla", "cudnn"):
        return jax.nn.dot_product_attention(
            q_BxLxHxK, k_BxLxGxK, v_BxLxGxK, mask=mask_BxLxL[:, None], scale=scale,
            implementation=impl)
    q = q_BxLxHxK.reshape(B, L, G, H // G, K)
    scores = jnp.einsum("blgrk,bmgk->bgrlm", q, k_BxLxGxK,
                        preferred_element_type=jnp.float32) * jnp.float32(scale)
    scores = jnp.where(mask_BxLxL[:, None, None], scores, jnp.finfo(jnp.float32).min)
    probs = jax.nn.softmax(scores, axis=-1).astype(v_BxLxGxK.dtype)
    out = jnp.einsum("bgrlm,bmgk->blgrk", probs, v_BxLxGxK)
    return out.reshape(B, L, H, K)


class Attention(nnx.Module):
    def __init__(self, config: ModelConfig, layer_idx: int, *, layout: str, out_std: float,
                 dtype, param_dtype, impl: str = "einsum"):
        if impl not in ATTENTION_IMPLS:
            raise ValueError(f"attention impl {impl!r} is not one of {ATTENTION_IMPLS}")
        c = config
        D, H, G, K = c.hidden_size, c.num_heads, c.num_kv_heads, c.head_dim
        kw = dict(std=c.initializer_range, dtype=dtype, param_dtype=param_dtype)
        self.layout, self.impl = layout, impl
        if layout == "separate":
            self.q = Linear((D,), (H, K), use_bias=c.qkv_bias, **kw)
            self.k = Linear((D,), (G, K), use_bias=c.qkv_bias, **kw)
            self.v = Linear((D,), (G, K), use_bias=c.qkv_bias, **kw)
        elif layout == "fused_thk":
            self.qkv = Linear((D,), (3, H, K), use_bias=c.qkv_bias, **kw)
        elif layout == "fused_htk":
            self.qkv = Linear((D,), (H, 3, K), use_bias=c.qkv_bias, **kw)
        else:
            raise ValueError(f"unknown attention layout {layout!r}")
        self.o = Linear((H, K), (D,), use_bias=c.o_bias, **{**kw, "std": out_std})
        self.scale = K ** -0.5
        if c.scale_attn_by_inverse_layer_idx:
            self.scale /= float(layer_idx + 1)

    def __call__(self, x_BxLxD, mask_BxLxL, cos_sin=None):
        if self.layout == "separate":
            q, k, v = self.q(x_BxLxD), self.k(x_BxLxD), self.v(x_BxLxD)
        elif self.layout == "fused_thk":
            qkv = self.qkv(x_BxLxD)
            q, k, v = qkv[:, :, 0], qkv[:, :, 1], qkv[:, :, 2]
        else:
            qkv = self.qkv(x_BxLxD)
            q, k, v = qkv[:, :, :, 0], qkv[:, :, :, 1], qkv[:, :, :, 2]
        if cos_sin is not None:
            q, k = apply_rope(q, cos_sin), apply_rope(k, cos_sin)
        out = attention_core(q, k, v, mask_BxLxL, scale=self.scale, impl=self.impl)
        return self.o(out)
