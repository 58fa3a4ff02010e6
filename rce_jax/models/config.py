"""Model configuration: one frozen dataclass for every family, plus RoPE settings.

`ModelConfig` is the project's single description of a decoder-only LM. The
family modules (`gpt2`, `gpt_neox`, `opt`, `llama`) translate Hugging Face
`config.json` dictionaries to and from it; a value that a port does not
implement is refused with `UnsupportedConfigError`, which names the attribute.
The dataclass is frozen and hashable, so it can be a static argument under jit.
"""

from __future__ import annotations

import dataclasses
from typing import Any

FAMILIES = ("gpt2", "gpt_neox", "opt", "llama", "mistral", "qwen2")
ROPE_TYPES = ("default", "linear", "llama3")
ACTIVATIONS = ("gelu", "gelu_new", "gelu_pytorch_tanh", "gelu_fast", "relu", "silu", "swish")
LAYER_TYPES = ("full_attention", "sliding_attention")


class UnsupportedConfigError(ValueError):
    """A config.json value that this port does not implement (the message names it)."""


@dataclasses.dataclass(frozen=True)
class RopeConfig:
    """Rotary position embedding settings (types: default, linear, llama3)."""

    type: str = "default"
    theta: float = 10000.0
    partial_rotary_factor: float = 1.0
    factor: float = 1.0  # linear and llama3
    low_freq_factor: float = 1.0  # llama3
    high_freq_factor: float = 4.0  # llama3
    original_max_position_embeddings: int | None = None  # llama3

    def __post_init__(self):
        if self.type not in ROPE_TYPES:
            raise UnsupportedConfigError(
                f"rope type {self.type!r} is not implemented (supported: {', '.join(ROPE_TYPES)})")
        if not 0.0 < self.partial_rotary_factor <= 1.0:
            raise UnsupportedConfigError(
                f"partial_rotary_factor={self.partial_rotary_factor} must be in (0, 1]")
        if self.type == "llama3" and self.original_max_position_embeddings is None:
            raise UnsupportedConfigError("llama3 rope scaling needs original_max_position_embeddings")


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """A decoder-only causal LM of one of FAMILIES.

    Family switches (each used by the families noted):
      parallel_residual      gpt_neox: x + attn(ln1(x)) + mlp(ln2(x))
      pre_layer_norm         opt: False is the post-LN layout of OPT-350m
      final_norm             opt: whether the decoder has a final LayerNorm
      word_embed_proj_dim    opt: token embedding width (project_in/out when != hidden_size)
      scale_attn_by_inverse_layer_idx   gpt2
      sliding_window, layer_types       mistral, qwen2 (per-layer full/sliding attention)
    """

    family: str
    vocab_size: int
    hidden_size: int
    num_layers: int
    num_heads: int
    intermediate_size: int
    max_position_embeddings: int
    num_kv_heads: int | None = None
    head_dim: int | None = None
    tie_word_embeddings: bool = False
    norm_eps: float = 1e-5
    activation: str = "gelu"
    initializer_range: float = 0.02
    qkv_bias: bool = True
    o_bias: bool = True
    mlp_bias: bool = True
    rope: RopeConfig | None = None
    parallel_residual: bool = False
    pre_layer_norm: bool = True
    final_norm: bool = True
    word_embed_proj_dim: int | None = None
    scale_attn_by_inverse_layer_idx: bool = False
    sliding_window: int | None = None
    layer_types: tuple[str, ...] | None = None
    bos_token_id: int | None = None
    eos_token_id: int | None = None
    pad_token_id: int | None = None

    def __post_init__(self):
        set_ = lambda k, v: object.__setattr__(self, k, v)  # noqa: E731 (frozen dataclass)
        if self.family not in FAMILIES:
            raise UnsupportedConfigError(f"family {self.family!r} is not one of {FAMILIES}")
        if self.num_kv_heads is None:
            set_("num_kv_heads", self.num_heads)
        if self.head_dim is None:
            if self.hidden_size % self.num_heads:
                raise ValueError(f"hidden_size={self.hidden_size} is not divisible by "
                                 f"num_heads={self.num_heads}; give head_dim")
            set_("head_dim", self.hidden_size // self.num_heads)
        if self.num_heads % self.num_kv_heads:
            raise ValueError(f"num_heads={self.num_heads} is not a multiple of "
                             f"num_kv_heads={self.num_kv_heads}")
        if self.activation not in ACTIVATIONS:
            raise UnsupportedConfigError(
                f"activation {self.activation!r} is not implemented (supported: {ACTIVATIONS})")
        if self.learned_positions != (self.rope is None):
            raise ValueError(f"family {self.family} needs rope={'None' if self.learned_positions else 'a RopeConfig'}")
        if self.layer_types is None:
            kind = "sliding_attention" if self.sliding_window is not None else "full_attention"
            set_("layer_types", (kind,) * self.num_layers)
        else:
            set_("layer_types", tuple(self.layer_types))
        if len(self.layer_types) != self.num_layers or set(self.layer_types) - set(LAYER_TYPES):
            raise UnsupportedConfigError(
                f"layer_types={self.layer_types!r} must list {self.num_layers} entries of {LAYER_TYPES}")
        if "sliding_attention" in self.layer_types and not self.sliding_window:
            raise ValueError("layer_types has sliding_attention layers but sliding_window is not set")
        if self.word_embed_proj_dim is None:
            set_("word_embed_proj_dim", self.hidden_size)

    # ---- derived properties -------------------------------------------------------------
    @property
    def learned_positions(self) -> bool:
        """GPT-2 and OPT add learned absolute position embeddings; the others use RoPE."""
        return self.family in ("gpt2", "opt")

    @property
    def position_offset(self) -> int:
        """OPT's learned position table is indexed by position + 2."""
        return 2 if self.family == "opt" else 0

    @property
    def num_position_embeddings(self) -> int:
        return self.max_position_embeddings + self.position_offset

    @property
    def rotary_dim(self) -> int:
        return int(self.head_dim * self.rope.partial_rotary_factor) if self.rope else 0

    @property
    def norm_type(self) -> str:
        return "rms" if self.family in ("llama", "mistral", "qwen2") else "layer"

    @property
    def gated_mlp(self) -> bool:
        return self.family in ("llama", "mistral", "qwen2")

    def window_for_layer(self, i: int) -> int | None:
        return self.sliding_window if self.layer_types[i] == "sliding_attention" else None

    # ---- Hugging Face config.json ---------------------------------------------------------
    @classmethod
    def from_hf_dict(cls, d: dict[str, Any]) -> "ModelConfig":
        """Parse a Hugging Face config.json dict (transformers 4.x and 5.x keys)."""
        from rce_jax.models.families import family_spec

        return family_spec(_model_type(d)).config_from_hf(d)

    def to_hf_dict(self) -> dict[str, Any]:
        """A config.json dict that transformers 4.46+ and 5.x both load."""
        from rce_jax.models.families import family_spec

        return family_spec(self.family).config_to_hf(self)


def _model_type(d: dict[str, Any]) -> str:
    mt = d.get("model_type")
    if mt is None:
        raise UnsupportedConfigError("config.json has no 'model_type'")
    if mt not in FAMILIES:
        raise UnsupportedConfigError(
            f"model_type {mt!r} is not supported (supported: {', '.join(FAMILIES)})")
    return mt


# ---- helpers shared by the family modules --------------------------------------------------
def refuse_unless(d: dict[str, Any], key: str, ok, default, family: str, why: str) -> Any:
    """Return d[key] (or default); raise UnsupportedConfigError naming `key` if not ok(value)."""
    value = d.get(key, default)
    if not ok(value):
        raise UnsupportedConfigError(
            f"{family}: config attribute {key!r}={value!r} is not supported ({why})")
    return value


def first_present(d: dict[str, Any], *keys: str, default=None):
    for k in keys:
        if d.get(k) is not None:
            return d[k]
    return default


_ROPE_KEYS = {"rope_type", "type", "rope_theta", "factor", "low_freq_factor", "high_freq_factor",
              "original_max_position_embeddings", "partial_rotary_factor"}


def rope_from_hf(d: dict[str, Any], family: str, *, default_partial: float = 1.0,
                 allow_partial: bool = True) -> RopeConfig:
    """RoPE settings from old keys (rope_scaling, rope_theta, rotary_pct, rotary_emb_base)
    or transformers-5 keys (rope_parameters, partial_rotary_factor), with 5.x's priority."""
    params = dict(d.get("rope_scaling") or d.get("rope_parameters") or {})
    unknown = set(params) - _ROPE_KEYS
    if unknown:
        raise UnsupportedConfigError(
            f"{family}: rope attribute(s) {sorted(unknown)} are not implemented")
    rtype = params.get("rope_type", params.get("type", "default"))
    if rtype not in ROPE_TYPES:
        raise UnsupportedConfigError(
            f"{family}: rope type {rtype!r} (config attribute rope_type) is not implemented "
            f"(supported: {', '.join(ROPE_TYPES)})")
    theta = first_present(params, "rope_theta") or first_present(
        d, "rope_theta", "rotary_emb_base", default=10000.0)
    partial = first_present(params, "partial_rotary_factor")
    if partial is None:
        partial = first_present(d, "partial_rotary_factor", "rotary_pct", default=default_partial)
    if not allow_partial and float(partial) != 1.0:
        raise UnsupportedConfigError(
            f"{family}: config attribute 'partial_rotary_factor'={partial} is not supported "
            "(this family rotates the whole head)")
    needed = {"linear": ("factor",), "llama3": ("factor", "low_freq_factor", "high_freq_factor")}
    missing = [k for k in needed.get(rtype, ()) if params.get(k) is None]
    if missing:
        raise UnsupportedConfigError(f"{family}: rope type {rtype!r} needs attribute(s) {missing}")
    kw: dict[str, Any] = dict(type=rtype, theta=float(theta), partial_rotary_factor=float(partial))
    if rtype in ("linear", "llama3"):
        kw["factor"] = float(params["factor"])
    if rtype == "llama3":
        kw["low_freq_factor"] = float(params["low_freq_factor"])
        kw["high_freq_factor"] = float(params["high_freq_factor"])
        kw["original_max_position_embeddings"] = int(first_present(
            d, "original_max_position_embeddings",
            default=params.get("original_max_position_embeddings", d.get("max_position_embeddings"))))
    return RopeConfig(**kw)


def rope_to_hf(rope: RopeConfig, *, partial_key: str | None = None) -> dict[str, Any]:
    """Both spellings: rope_theta + rope_scaling (4.x) and rope_parameters (5.x)."""
    scaling = None
    if rope.type != "default":
        scaling = {"rope_type": rope.type, "factor": rope.factor}
        if rope.type == "llama3":
            scaling.update(low_freq_factor=rope.low_freq_factor,
                           high_freq_factor=rope.high_freq_factor,
                           original_max_position_embeddings=rope.original_max_position_embeddings)
    params = {"rope_type": rope.type, "rope_theta": rope.theta, **(scaling or {})}
    out: dict[str, Any] = {"rope_theta": rope.theta, "rope_scaling": scaling}
    if partial_key is not None:
        params["partial_rotary_factor"] = rope.partial_rotary_factor
        out[partial_key] = rope.partial_rotary_factor
    out["rope_parameters"] = params
    return out


def common_hf_fields(c: ModelConfig, architecture: str) -> dict[str, Any]:
    return {"model_type": c.family, "architectures": [architecture],
            "vocab_size": c.vocab_size, "tie_word_embeddings": c.tie_word_embeddings,
            "bos_token_id": c.bos_token_id, "eos_token_id": c.eos_token_id,
            "pad_token_id": c.pad_token_id}


def token_ids_from_hf(d: dict[str, Any]) -> dict[str, Any]:
    out = {}
    for k in ("bos_token_id", "eos_token_id", "pad_token_id"):
        v = d.get(k)
        if isinstance(v, list):  # some configs list several EOS ids; keep the first
            v = v[0] if v else None
        out[k] = v
    return out
