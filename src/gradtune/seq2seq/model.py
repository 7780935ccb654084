"""A pre-LayerNorm Transformer encoder–decoder (Flax NNX) with tied embeddings.

Rows may be packed with several examples: every token carries a segment id (0 = padding)
and a position within its example, and attention never crosses segments. Dropout takes
an explicit key (``None`` = evaluation), so the step functions stay pure: NNX ``Rngs``
would advance on every call and give different masks to the passes of one guided step.

Decoding (one example per row) runs the decoder one position at a time with a cache:
``memory_keys_values`` projects the encoder output once per source, ``empty_cache`` holds
each layer's self-attention keys and values, and ``decode_step`` adds one position.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import jax
import jax.numpy as jnp
from flax import nnx

NEG_INF = -1e9  # finite, so that fully masked (padding) rows stay NaN-free

Cache = list[dict[str, jax.Array]]  # per decoder layer: self-attention keys "k" and values "v", (b, len, d)


@dataclass(frozen=True)
class ModelConfig:
    vocab_size: int = 8000
    d_model: int = 128
    num_heads: int = 4
    mlp_dim: int = 512
    encoder_layers: int = 2
    decoder_layers: int = 2
    dropout: float = 0.1
    dtype: str = "float32"  # of activations and matmuls: float32 or bfloat16 (parameters keep theirs)


PRESETS: dict[str, ModelConfig] = {
    "tiny": ModelConfig(),
    "small": ModelConfig(d_model=256, num_heads=4, mlp_dim=1024, encoder_layers=3, decoder_layers=3),
    "base": ModelConfig(d_model=512, num_heads=8, mlp_dim=2048, encoder_layers=6, decoder_layers=6),
    "paper": ModelConfig(d_model=1536, num_heads=16, mlp_dim=6144, encoder_layers=6, decoder_layers=6),
}


def preset(name: str, **overrides) -> ModelConfig:
    if name not in PRESETS:
        raise ValueError(f"unknown model preset {name!r}; choose one of {', '.join(PRESETS)}")
    return replace(PRESETS[name], **overrides)


def compute_dtype(cfg: ModelConfig, param_dtype) -> jnp.dtype:
    """The dtype of activations and matmuls: bfloat16 if ``cfg.dtype`` says so, else the parameters'."""
    return (
        jnp.bfloat16 if getattr(cfg, "dtype", "float32") == "bfloat16" else param_dtype
    )  # a user's config may lack it


def dropout(x: jax.Array, rate: float, key: jax.Array | None) -> jax.Array:
    """Inverted dropout: each element kept with probability ``1 − rate`` and scaled by ``1 / (1 − rate)``.

    The mask is a pure function of ``key``. Its random bits come from XLA's own ThreeFry
    bit generator (``lax.rng_bit_generator``), seeded by the key's data: on CPU that kernel
    is much faster than ``jax.random.bernoulli`` (ThreeFry written out as array ops), which
    cost a noticeable share of a training step (``bench/``; numbers in ``bench/results/``).
    """
    if key is None or rate == 0.0:
        return x
    data = jax.random.key_data(key) if jnp.issubdtype(key.dtype, jax.dtypes.prng_key) else key
    seed = jnp.resize(data.astype(jnp.uint32).ravel(), (4,))  # the generator's state: 4 words
    _, bits = jax.lax.rng_bit_generator(seed, x.shape, jnp.uint32, algorithm=jax.lax.RandomAlgorithm.RNG_THREE_FRY)
    keep = bits < jnp.uint32(round((1.0 - rate) * 2**32))
    return jnp.where(keep, x / (1.0 - rate), 0.0)


def sinusoidal(positions: jax.Array, d_model: int) -> jax.Array:
    """Sinusoidal embeddings of integer positions, shape positions.shape + (d_model,)."""
    half = d_model // 2
    freq = jnp.exp(-jnp.log(10_000.0) * jnp.arange(half) / half)
    angles = positions[..., None].astype(jnp.float32) * freq
    return jnp.concatenate([jnp.sin(angles), jnp.cos(angles)], axis=-1)


def segment_mask(q_seg: jax.Array, k_seg: jax.Array, causal: bool = False) -> jax.Array:
    """(batch, 1, q, k) bool mask: same example, key not padding, optionally causal."""
    mask = (q_seg[:, :, None] == k_seg[:, None, :]) & (k_seg[:, None, :] > 0)
    if causal:
        n = q_seg.shape[1]
        mask &= jnp.tril(jnp.ones((n, n), bool))
    return mask[:, None]


class Linear(nnx.Linear):
    """``nnx.Linear`` applied to the rows of ``x`` flattened to a matrix (b·s, d_in).

    The same function and parameters, but autodiff then differentiates 2-D matrix products:
    on XLA's CPU backend the weight gradient of a (b, s, d) input, a contraction over two
    axes, ran slower than the same contraction over one (``bench/throughput.py``; numbers
    in ``bench/results/``).
    """

    def __call__(self, x: jax.Array) -> jax.Array:
        return super().__call__(x.reshape(-1, x.shape[-1])).reshape(*x.shape[:-1], self.out_features)


class Attention(nnx.Module):
    def __init__(self, cfg: ModelConfig, rngs: nnx.Rngs, dtype=jnp.float32):
        d, self.heads = cfg.d_model, cfg.num_heads
        self.query = Linear(d, d, use_bias=False, rngs=rngs, dtype=compute_dtype(cfg, dtype), param_dtype=dtype)
        self.key = Linear(d, d, use_bias=False, rngs=rngs, dtype=compute_dtype(cfg, dtype), param_dtype=dtype)
        self.value = Linear(d, d, use_bias=False, rngs=rngs, dtype=compute_dtype(cfg, dtype), param_dtype=dtype)
        self.out = Linear(d, d, use_bias=False, rngs=rngs, dtype=compute_dtype(cfg, dtype), param_dtype=dtype)

    def __call__(self, x: jax.Array, context: jax.Array, mask: jax.Array) -> jax.Array:
        return self.attend(self.query(x), self.key(context), self.value(context), mask)

    def attend(self, q: jax.Array, k: jax.Array, v: jax.Array, mask: jax.Array) -> jax.Array:
        """Multi-head attention of projected queries (b, q, d) over projected keys and values (b, k, d)."""
        b, q_len, d = q.shape
        split = lambda t: t.reshape(b, -1, self.heads, d // self.heads)  # noqa: E731
        q, k, v = split(q), split(k), split(v)
        scores = jnp.einsum("bqhd,bkhd->bhqk", q, k) / jnp.sqrt(d // self.heads).astype(q.dtype)
        wide = jnp.promote_types(scores.dtype, jnp.float32)  # the softmax in float32 (or wider) even in bfloat16
        weights = jax.nn.softmax(jnp.where(mask, scores.astype(wide), NEG_INF), axis=-1).astype(v.dtype)
        return self.out(jnp.einsum("bhqk,bkhd->bqhd", weights, v).reshape(b, q_len, d))


class MLP(nnx.Module):
    def __init__(self, cfg: ModelConfig, rngs: nnx.Rngs, dtype=jnp.float32):
        self.up = Linear(cfg.d_model, cfg.mlp_dim, rngs=rngs, dtype=compute_dtype(cfg, dtype), param_dtype=dtype)
        self.down = Linear(cfg.mlp_dim, cfg.d_model, rngs=rngs, dtype=compute_dtype(cfg, dtype), param_dtype=dtype)
        self.rate = cfg.dropout

    def __call__(self, x: jax.Array, key: jax.Array | None) -> jax.Array:
        return self.down(dropout(jax.nn.relu(self.up(x)), self.rate, key))


def _keys(key: jax.Array | None, n: int) -> list[jax.Array | None]:
    return [None] * n if key is None else list(jax.random.split(key, n))


class EncoderLayer(nnx.Module):
    def __init__(self, cfg: ModelConfig, rngs: nnx.Rngs, dtype=jnp.float32):
        self.norm_attn = nnx.LayerNorm(cfg.d_model, rngs=rngs, dtype=compute_dtype(cfg, dtype), param_dtype=dtype)
        self.attn = Attention(cfg, rngs, dtype)
        self.norm_mlp = nnx.LayerNorm(cfg.d_model, rngs=rngs, dtype=compute_dtype(cfg, dtype), param_dtype=dtype)
        self.mlp = MLP(cfg, rngs, dtype)
        self.rate = cfg.dropout

    def __call__(self, x, mask, key):
        k_attn, k_mlp, k_inner = _keys(key, 3)
        h = self.norm_attn(x)
        x = x + dropout(self.attn(h, h, mask), self.rate, k_attn)
        return x + dropout(self.mlp(self.norm_mlp(x), k_inner), self.rate, k_mlp)


class DecoderLayer(nnx.Module):
    def __init__(self, cfg: ModelConfig, rngs: nnx.Rngs, dtype=jnp.float32):
        self.norm_self = nnx.LayerNorm(cfg.d_model, rngs=rngs, dtype=compute_dtype(cfg, dtype), param_dtype=dtype)
        self.self_attn = Attention(cfg, rngs, dtype)
        self.norm_cross = nnx.LayerNorm(cfg.d_model, rngs=rngs, dtype=compute_dtype(cfg, dtype), param_dtype=dtype)
        self.cross_attn = Attention(cfg, rngs, dtype)
        self.norm_mlp = nnx.LayerNorm(cfg.d_model, rngs=rngs, dtype=compute_dtype(cfg, dtype), param_dtype=dtype)
        self.mlp = MLP(cfg, rngs, dtype)
        self.rate = cfg.dropout

    def __call__(self, x, memory, self_mask, cross_mask, key):
        k_self, k_cross, k_mlp, k_inner = _keys(key, 4)
        h = self.norm_self(x)
        x = x + dropout(self.self_attn(h, h, self_mask), self.rate, k_self)
        x = x + dropout(self.cross_attn(self.norm_cross(x), memory, cross_mask), self.rate, k_cross)
        return x + dropout(self.mlp(self.norm_mlp(x), k_inner), self.rate, k_mlp)

    def step(self, x, memory_kv, cache, position, self_mask, cross_mask):
        """``__call__`` for one position ``x`` (b, 1, d), in evaluation mode, with cached keys and values."""
        h = self.norm_self(x)
        k = jax.lax.dynamic_update_slice_in_dim(cache["k"], self.self_attn.key(h), position, axis=1)
        v = jax.lax.dynamic_update_slice_in_dim(cache["v"], self.self_attn.value(h), position, axis=1)
        x = x + self.self_attn.attend(self.self_attn.query(h), k, v, self_mask)
        x = x + self.cross_attn.attend(self.cross_attn.query(self.norm_cross(x)), *memory_kv, cross_mask)
        return x + self.mlp(self.norm_mlp(x), None), {"k": k, "v": v}


class Transformer(nnx.Module):
    """Encoder–decoder over token ids; ``__call__`` returns next-token logits.

    ``dtype`` is that of the parameters (float64 for exactness checks); computation is in
    ``cfg.dtype`` when that is bfloat16, else in ``dtype`` too.
    """

    config_class = ModelConfig
    presets = PRESETS

    def __init__(self, cfg: ModelConfig, rngs: nnx.Rngs, dtype=jnp.float32):
        self.cfg = cfg
        self.compute_dtype = compute_dtype(cfg, dtype)
        self.embed = nnx.Embed(
            cfg.vocab_size, cfg.d_model, rngs=rngs, dtype=compute_dtype(cfg, dtype), param_dtype=dtype
        )
        self.encoder = nnx.List([EncoderLayer(cfg, rngs, dtype) for _ in range(cfg.encoder_layers)])
        self.encoder_norm = nnx.LayerNorm(cfg.d_model, rngs=rngs, dtype=compute_dtype(cfg, dtype), param_dtype=dtype)
        self.decoder = nnx.List([DecoderLayer(cfg, rngs, dtype) for _ in range(cfg.decoder_layers)])
        self.decoder_norm = nnx.LayerNorm(cfg.d_model, rngs=rngs, dtype=compute_dtype(cfg, dtype), param_dtype=dtype)

    def _embed(self, tokens, positions, key):
        x = self.embed(tokens) * jnp.sqrt(self.cfg.d_model).astype(self.compute_dtype)
        x = x + sinusoidal(positions, self.cfg.d_model).astype(x.dtype)
        return dropout(x, self.cfg.dropout, key)

    def encode(self, src, src_seg, src_pos, key=None):
        keys = _keys(key, len(self.encoder) + 1)
        x = self._embed(src, src_pos, keys[-1])
        mask = segment_mask(src_seg, src_seg)
        for layer, k in zip(self.encoder, keys, strict=False):
            x = layer(x, mask, k)
        return self.encoder_norm(x)

    def decoder_states(self, memory, src_seg, tgt_in, tgt_seg, tgt_pos, key=None):
        """The decoder's final (normalised) states, (b, tgt_len, d): logits are ``embed.attend`` of them."""
        keys = _keys(key, len(self.decoder) + 1)
        x = self._embed(tgt_in, tgt_pos, keys[-1])
        self_mask = segment_mask(tgt_seg, tgt_seg, causal=True)
        cross_mask = segment_mask(tgt_seg, src_seg)
        for layer, k in zip(self.decoder, keys, strict=False):
            x = layer(x, memory, self_mask, cross_mask, k)
        return self.decoder_norm(x)

    def decode(self, memory, src_seg, tgt_in, tgt_seg, tgt_pos, key=None):
        return self.embed.attend(self.decoder_states(memory, src_seg, tgt_in, tgt_seg, tgt_pos, key))

    def hidden(self, batch: dict[str, jax.Array], key: jax.Array | None = None) -> jax.Array:
        """The decoder's final states of a batch; ``__call__`` is ``embed.attend`` of them."""
        k_enc, k_dec = _keys(key, 2)
        memory = self.encode(batch["src"], batch["src_seg"], batch["src_pos"], k_enc)
        return self.decoder_states(memory, batch["src_seg"], batch["tgt_in"], batch["tgt_seg"], batch["tgt_pos"], k_dec)

    def output_embedding(self) -> jax.Array:
        """The tied output projection (vocab, d): logits are ``hidden @ output_embedding().T``."""
        return self.embed.embedding[...]

    def __call__(self, batch: dict[str, jax.Array], key: jax.Array | None = None) -> jax.Array:
        return self.embed.attend(self.hidden(batch, key))

    def memory_keys_values(self, memory: jax.Array) -> list[tuple[jax.Array, jax.Array]]:
        """Cross-attention keys and values of every decoder layer, (b, src_len, d) each: once per source."""
        return [(layer.cross_attn.key(memory), layer.cross_attn.value(memory)) for layer in self.decoder]

    def empty_cache(self, batch: int, max_len: int) -> Cache:
        """Self-attention keys and values of every decoder layer for ``max_len`` positions, all zero."""
        zeros = jnp.zeros((batch, max_len, self.cfg.d_model), self.compute_dtype)
        return [{"k": zeros, "v": zeros} for _ in self.decoder]

    def decode_step(
        self,
        memory_kv: list[tuple[jax.Array, jax.Array]],
        src_seg: jax.Array,
        token: jax.Array,
        position: jax.Array,
        cache: Cache,
    ) -> tuple[jax.Array, Cache]:
        """Next-token logits (b, vocab) after ``token`` (b,) at ``position`` (a scalar, the same in
        every row), and the cache with that position added; one example per row, evaluation mode.

        Equals ``decode`` of the whole prefix at ``position`` (to float round-off).
        """
        batch, max_len = token.shape[0], cache[0]["k"].shape[1]
        x = self._embed(token[:, None], jnp.full((batch, 1), position), None)
        self_mask = (jnp.arange(max_len) <= position)[None, None, None, :]
        cross_mask = (src_seg > 0)[:, None, None, :]
        new_cache = []
        for layer, kv, layer_cache in zip(self.decoder, memory_kv, cache, strict=True):
            x, layer_cache = layer.step(x, kv, layer_cache, position, self_mask, cross_mask)
            new_cache.append(layer_cache)
        return self.embed.attend(self.decoder_norm(x))[:, 0], new_cache
