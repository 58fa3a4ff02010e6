"""Shared layers: linear maps over named axes, embeddings, norms, MLPs, activations, RoPE.

Conventions: parameters are stored in `param_dtype`, computation runs in `dtype`
(inputs and weights are cast to it), and norms, softmax and RoPE angles are
computed in float32. Kernels keep their axes split (e.g. q: [D, H, K]) so that
sharding rules can name the head axis directly.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from rce_jax.models.config import RopeConfig

Shape = tuple[int, ...]


def param(shape: Shape, dtype, rule: tuple) -> nnx.Param:
    """A parameter with its initialisation rule as metadata: ("normal", std), ("zeros",) or
    ("ones",). The value is a placeholder (ones for "ones", else zeros); `init_model` draws
    the random values and `from_pretrained` loads them, both straight into their sharding."""
    fill = jnp.ones if rule[0] == "ones" else jnp.zeros
    return nnx.Param(fill(shape, dtype), init_rule=rule)


class Linear(nnx.Module):
    """y = x . kernel (+ bias), contracting the last len(in_shape) axes of x.

    kernel: [*in_shape, *out_shape] initialised N(0, std^2); bias: [*out_shape], zeros.
    """

    def __init__(self, in_shape: Sequence[int], out_shape: Sequence[int], *, use_bias: bool,
                 std: float, dtype=jnp.float32, param_dtype=jnp.float32):
        self.in_shape, self.out_shape = tuple(in_shape), tuple(out_shape)
        self.kernel = param(self.in_shape + self.out_shape, param_dtype, ("normal", std))
        self.bias = param(self.out_shape, param_dtype, ("zeros",)) if use_bias else None
        self.dtype = dtype

    def __call__(self, x: jax.Array) -> jax.Array:
        n_in = len(self.in_shape)
        contract = (tuple(range(x.ndim - n_in, x.ndim)), tuple(range(n_in)))
        y = jax.lax.dot_general(x.astype(self.dtype), self.kernel[...].astype(self.dtype),
                                (contract, ((), ())))
        if self.bias is not None:
            y = y + self.bias[...].astype(self.dtype)
        return y


class Embed(nnx.Module):
    """Lookup table embedding: [num, features], initialised N(0, std^2)."""

    def __init__(self, num: int, features: int, *, std: float, dtype=jnp.float32,
                 param_dtype=jnp.float32):
        self.embedding = param((num, features), param_dtype, ("normal", std))
        self.dtype = dtype

    def __call__(self, ids: jax.Array) -> jax.Array:
        return jnp.take(self.embedding[...], ids, axis=0).astype(self.dtype)


class LayerNorm(nnx.Module):
    """LayerNorm with scale and bias, statistics in float32."""

    def __init__(self, features: int, *, eps: float, dtype=jnp.float32, param_dtype=jnp.float32):
        self.scale = param((features,), param_dtype, ("ones",))
        self.bias = param((features,), param_dtype, ("zeros",))
        self.eps, self.dtype = eps, dtype

    def __call__(self, x: jax.Array) -> jax.Array:
        x32 = x.astype(jnp.float32)
        mean = jnp.mean(x32, axis=-1, keepdims=True)
        var = jnp.mean(jnp.square(x32 - mean), axis=-1, keepdims=True)
        y = (x32 - mean) * jax.lax.rsqrt(var + self.eps)
        y = y * self.scale[...].astype(jnp.float32) + self.bias[...].astype(jnp.float32)
        return y.astype(self.dtype)


class RMSNorm(nnx.Module):
    """RMSNorm as in Llama: normalise in float32, cast to dtype, then multiply by the scale."""

    def __init__(self, features: int, *, eps: float, dtype=jnp.float32, param_dtype=jnp.float32):
        self.scale = param((features,), param_dtype, ("ones",))
        self.eps, self.dtype = eps, dtype

    def __call__(self, x: jax.Array) -> jax.Array:
        x32 = x.astype(jnp.float32)
        y = x32 * jax.lax.rsqrt(jnp.mean(jnp.square(x32), axis=-1, keepdims=True) + self.eps)
        return self.scale[...].astype(self.dtype) * y.astype(self.dtype)


def make_norm(kind: str, features: int, *, eps: float, dtype, param_dtype) -> nnx.Module:
    if kind == "rms":
        return RMSNorm(features, eps=eps, dtype=dtype, param_dtype=param_dtype)
    return LayerNorm(features, eps=eps, dtype=dtype, param_dtype=param_dtype)


def _gelu_tanh(x):
    return 0.5 * x * (1.0 + jnp.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x ** 3)))


ACTIVATION_FNS = {
    "gelu": lambda x: jax.nn.gelu(x, approximate=False),
    "gelu_new": _gelu_tanh,
    "gelu_pytorch_tanh": _gelu_tanh,
    "gelu_fast": _gelu_tanh,
    "relu": jax.nn.relu,
    "silu": jax.nn.silu,
    "swish": jax.nn.silu,
}


class MLP(nnx.Module):
    """down(act(up(x))) (GPT-2, GPT-NeoX, OPT)."""

    def __init__(self, d: int, f: int, *, activation: str, use_bias: bool, std: float,
                 out_std: float, dtype, param_dtype):
        kw = dict(use_bias=use_bias, dtype=dtype, param_dtype=param_dtype)
        self.up = Linear((d,), (f,), std=std, **kw)
        self.down = Linear((f,), (d,), std=out_std, **kw)
        self.activation = activation

    def __call__(self, x):
        return self.down(ACTIVATION_FNS[self.activation](self.up(x)))


class GatedMLP(nnx.Module):
    """down(act(gate(x)) * up(x)) (Llama, Mistral, Qwen2)."""

    def __init__(self, d: int, f: int, *, activation: str, use_bias: bool, std: float,
                 out_std: float, dtype, param_dtype):
        kw = dict(use_bias=use_bias, dtype=dtype, param_dtype=param_dtype)
        self.gate = Linear((d,), (f,), std=std, **kw)
        self.up = Linear((d,), (f,), std=std, **kw)
        self.down = Linear((f,), (d,), std=out_std, **kw)
        self.activation = activation

    def __call__(self, x):
        return self.down(ACTIVATION_FNS[self.activation](self.gate(x)) * self.up(x))


# ---- rotary position embeddings ----------------------------------------------------------
def rope_inv_freq(rope: RopeConfig, rotary_dim: int) -> np.ndarray:
    """Inverse frequencies [rotary_dim // 2] (float32, as transformers computes them),
    with linear or llama3 scaling applied."""
    exponents = np.arange(0, rotary_dim, 2, dtype=np.int64).astype(np.float32) / np.float32(rotary_dim)
    inv = (1.0 / (np.float32(rope.theta) ** exponents)).astype(np.float32)
    if rope.type == "linear":
        inv = (inv / np.float32(rope.factor)).astype(np.float32)
    elif rope.type == "llama3":
        old_len = rope.original_max_position_embeddings
        low_wavelen = old_len / rope.low_freq_factor
        high_wavelen = old_len / rope.high_freq_factor
        wavelen = 2 * math.pi / inv
        scaled = np.where(wavelen > low_wavelen, inv / rope.factor, inv)
        smooth = (old_len / wavelen - rope.low_freq_factor) / (rope.high_freq_factor - rope.low_freq_factor)
        smoothed = (1 - smooth) * scaled / rope.factor + smooth * scaled
        medium = ~(wavelen < high_wavelen) & ~(wavelen > low_wavelen)
        inv = np.where(medium, smoothed, scaled).astype(np.float32)
    return inv


def rope_angles(positions_BxL: jax.Array, inv_freq: np.ndarray) -> tuple[jax.Array, jax.Array]:
    """cos, sin of shape [B, L, rotary_dim] (float32; the half-frequencies repeated twice)."""
    freqs = positions_BxL.astype(jnp.float32)[..., None] * jnp.asarray(inv_freq, jnp.float32)
    emb = jnp.concatenate([freqs, freqs], axis=-1)
    return jnp.cos(emb), jnp.sin(emb)


def apply_rope(x_BxLxHxK: jax.Array, cos_sin: tuple[jax.Array, jax.Array]) -> jax.Array:
    """Rotate the first rotary_dim features of every head (rotate-half convention), in float32."""
    cos, sin = cos_sin
    rot = cos.shape[-1]
    x = x_BxLxHxK.astype(jnp.float32)
    x_rot, x_pass = x[..., :rot], x[..., rot:]
    half = rot // 2
    rotated = jnp.concatenate([-x_rot[..., half:], x_rot[..., :half]], axis=-1)
    c, s = cos[:, :, None, :], sin[:, :, None, :]
    out = jnp.concatenate([x_rot * c + rotated * s, x_pass], axis=-1)
    return out.astype(x_BxLxHxK.dtype)
