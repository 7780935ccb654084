"""A second, minimal sequence-to-sequence model, given to gradtune as ``toy_models:CrossAttentionOnly``.

Each target position sees its own previous token and, through one cross-attention, the
source: no self-attention, so decoding needs no cache of past positions.
"""

from dataclasses import dataclass

import jax
import jax.numpy as jnp
from flax import nnx

from gradtune.seq2seq.model import Attention, segment_mask, sinusoidal


@dataclass(frozen=True)
class CrossAttentionConfig:
    vocab_size: int = 1000
    d_model: int = 32
    num_heads: int = 2


class CrossAttentionOnly(nnx.Module):
    config_class = CrossAttentionConfig

    def __init__(self, cfg: CrossAttentionConfig, rngs: nnx.Rngs):
        self.cfg = cfg
        self.embed = nnx.Embed(cfg.vocab_size, cfg.d_model, rngs=rngs)
        self.cross = Attention(cfg, rngs)
        self.norm = nnx.LayerNorm(cfg.d_model, rngs=rngs)

    def _states(self, memory, src_seg, tokens, tgt_seg, positions):
        x = self.embed(tokens) + sinusoidal(positions, self.cfg.d_model)
        return self.norm(x + self.cross(x, memory, segment_mask(tgt_seg, src_seg)))

    def encode(self, src, src_seg, src_pos, key=None):
        return self.embed(src) + sinusoidal(src_pos, self.cfg.d_model)

    def hidden(self, batch, key=None):
        memory = self.encode(batch["src"], batch["src_seg"], batch["src_pos"])
        return self._states(memory, batch["src_seg"], batch["tgt_in"], batch["tgt_seg"], batch["tgt_pos"])

    def output_embedding(self):
        return self.embed.embedding[...]

    def __call__(self, batch, key=None):
        return self.embed.attend(self.hidden(batch, key))

    def memory_keys_values(self, memory):
        return memory

    def empty_cache(self, batch, max_len):
        return {"unused": jnp.zeros((batch,), jnp.int32)}

    def decode_step(self, memory, src_seg, token, position, cache):
        batch = token.shape[0]
        seg = jnp.ones((batch, 1), jnp.int32)  # the one example of each row
        x = self._states(memory, src_seg, token[:, None], seg, jnp.full((batch, 1), position))
        return self.embed.attend(x)[:, 0], jax.tree.map(lambda c: c + 1, cache)
