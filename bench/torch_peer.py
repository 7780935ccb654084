"""gradtune's Transformer written in PyTorch: the peer of ``bench/throughput.py``.

The same model as ``gradtune.seq2seq.model.Transformer``, layer for layer: pre-LayerNorm
encoder–decoder, tied input/output embeddings scaled by √d, sinusoidal positions (sines then
cosines), bias-free attention projections, ReLU MLP with biases, dropout on the embeddings,
on each residual branch and inside the MLP (none on attention weights), LayerNorm ε = 1e-6,
attention kept inside packed segments (padding keys masked with a finite −1e9, so padding
rows stay NaN-free, as in gradtune). The step is label-smoothed cross-entropy (ε = 0.1,
padding excluded, mean over target tokens), backward, AdamW with gradtune's defaults.

Only the benchmark uses it: PyTorch is the optional ``bench`` extra (``pip install -e .[bench]``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

NEG_INF = -1e9


@dataclass(frozen=True)
class PeerConfig:
    vocab_size: int
    d_model: int
    num_heads: int
    mlp_dim: int
    encoder_layers: int
    decoder_layers: int
    dropout: float = 0.1
    fused_attention: bool = True  # F.scaled_dot_product_attention; False: einsum + softmax


def sinusoidal(positions: torch.Tensor, d_model: int) -> torch.Tensor:
    half = d_model // 2
    freq = torch.exp(-math.log(10_000.0) * torch.arange(half, dtype=torch.float32) / half)
    angles = positions[..., None].float() * freq
    return torch.cat([torch.sin(angles), torch.cos(angles)], dim=-1)


def segment_bias(q_seg: torch.Tensor, k_seg: torch.Tensor, causal: bool = False) -> torch.Tensor:
    """(batch, 1, q, k) additive mask: 0 inside an example, −1e9 across examples and on padding keys."""
    allowed = (q_seg[:, :, None] == k_seg[:, None, :]) & (k_seg[:, None, :] > 0)
    if causal:
        n = q_seg.shape[1]
        allowed &= torch.ones(n, n, dtype=torch.bool).tril()
    zero = torch.zeros((), dtype=torch.float32)
    return torch.where(allowed, zero, torch.full((), NEG_INF))[:, None]


class Attention(nn.Module):
    def __init__(self, cfg: PeerConfig):
        super().__init__()
        d = cfg.d_model
        self.heads, self.fused = cfg.num_heads, cfg.fused_attention
        self.query, self.key = nn.Linear(d, d, bias=False), nn.Linear(d, d, bias=False)
        self.value, self.out = nn.Linear(d, d, bias=False), nn.Linear(d, d, bias=False)

    def forward(self, x: torch.Tensor, context: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        b, q_len, d = x.shape
        split = lambda t: t.view(b, -1, self.heads, d // self.heads).transpose(1, 2)  # noqa: E731
        q, k, v = split(self.query(x)), split(self.key(context)), split(self.value(context))
        if self.fused:
            mixed = F.scaled_dot_product_attention(q, k, v, attn_mask=bias)
        else:
            scores = q @ k.transpose(-1, -2) / math.sqrt(d // self.heads) + bias
            mixed = torch.softmax(scores, dim=-1) @ v
        return self.out(mixed.transpose(1, 2).reshape(b, q_len, d))


class MLP(nn.Module):
    def __init__(self, cfg: PeerConfig):
        super().__init__()
        self.up, self.down = nn.Linear(cfg.d_model, cfg.mlp_dim), nn.Linear(cfg.mlp_dim, cfg.d_model)
        self.drop = nn.Dropout(cfg.dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down(self.drop(F.relu(self.up(x))))


def layer_norm(d: int) -> nn.LayerNorm:
    return nn.LayerNorm(d, eps=1e-6)  # Flax's default ε


class EncoderLayer(nn.Module):
    def __init__(self, cfg: PeerConfig):
        super().__init__()
        self.norm_attn, self.attn = layer_norm(cfg.d_model), Attention(cfg)
        self.norm_mlp, self.mlp = layer_norm(cfg.d_model), MLP(cfg)
        self.drop = nn.Dropout(cfg.dropout)

    def forward(self, x, bias):
        h = self.norm_attn(x)
        x = x + self.drop(self.attn(h, h, bias))
        return x + self.drop(self.mlp(self.norm_mlp(x)))


class DecoderLayer(nn.Module):
    def __init__(self, cfg: PeerConfig):
        super().__init__()
        self.norm_self, self.self_attn = layer_norm(cfg.d_model), Attention(cfg)
        self.norm_cross, self.cross_attn = layer_norm(cfg.d_model), Attention(cfg)
        self.norm_mlp, self.mlp = layer_norm(cfg.d_model), MLP(cfg)
        self.drop = nn.Dropout(cfg.dropout)

    def forward(self, x, memory, self_bias, cross_bias):
        h = self.norm_self(x)
        x = x + self.drop(self.self_attn(h, h, self_bias))
        x = x + self.drop(self.cross_attn(self.norm_cross(x), memory, cross_bias))
        return x + self.drop(self.mlp(self.norm_mlp(x)))


class Transformer(nn.Module):
    """Encoder–decoder over packed token rows; ``forward`` returns next-token logits."""

    def __init__(self, cfg: PeerConfig):
        super().__init__()
        self.cfg = cfg
        self.embed = nn.Embedding(cfg.vocab_size, cfg.d_model)
        nn.init.normal_(self.embed.weight, std=cfg.d_model**-0.5)
        self.encoder = nn.ModuleList(EncoderLayer(cfg) for _ in range(cfg.encoder_layers))
        self.encoder_norm = layer_norm(cfg.d_model)
        self.decoder = nn.ModuleList(DecoderLayer(cfg) for _ in range(cfg.decoder_layers))
        self.decoder_norm = layer_norm(cfg.d_model)
        self.drop = nn.Dropout(cfg.dropout)

    def _embed(self, tokens, positions):
        x = self.embed(tokens) * math.sqrt(self.cfg.d_model) + sinusoidal(positions, self.cfg.d_model)
        return self.drop(x)

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        src_seg, tgt_seg = batch["src_seg"], batch["tgt_seg"]
        x = self._embed(batch["src"], batch["src_pos"])
        enc_bias = segment_bias(src_seg, src_seg)
        for layer in self.encoder:
            x = layer(x, enc_bias)
        memory = self.encoder_norm(x)
        y = self._embed(batch["tgt_in"], batch["tgt_pos"])
        self_bias, cross_bias = segment_bias(tgt_seg, tgt_seg, causal=True), segment_bias(tgt_seg, src_seg)
        for layer in self.decoder:
            y = layer(y, memory, self_bias, cross_bias)
        return self.decoder_norm(y) @ self.embed.weight.T  # tied output embedding


def smoothed_loss(logits: torch.Tensor, targets: torch.Tensor, label_smoothing: float) -> torch.Tensor:
    """Mean over non-padding tokens of ``(1 − ε)·(−log p_y) + ε·mean_v(−log p_v)``."""
    return F.cross_entropy(
        logits.reshape(-1, logits.shape[-1]), targets.reshape(-1), ignore_index=0, label_smoothing=label_smoothing
    )


def make_step(cfg: PeerConfig, compiled: bool = False, learning_rate: float = 2e-3, label_smoothing: float = 0.1):
    """``step(batch) -> loss``: one training update of a fresh model, AdamW (gradtune's defaults).

    AdamW is PyTorch's fused CPU kernel (decoupled weight decay on every parameter, as
    optax.adamw). ``compiled`` wraps the model (forward and loss) in ``torch.compile``.
    """
    torch.manual_seed(0)
    model = Transformer(cfg).train()
    forward = torch.compile(model) if compiled else model
    optimizer = torch.optim.AdamW(
        model.parameters(), lr=learning_rate, betas=(0.9, 0.98), eps=1e-9, weight_decay=1e-4, fused=True
    )

    def step(batch: dict[str, torch.Tensor]) -> torch.Tensor:
        optimizer.zero_grad(set_to_none=True)
        loss = smoothed_loss(forward(batch), batch["tgt_out"], label_smoothing)
        loss.backward()
        optimizer.step()
        return loss.detach()

    return step


def to_torch(batch: dict[str, np.ndarray]) -> dict[str, torch.Tensor]:
    """A packed numpy batch as int64 tensors (embedding and loss indices)."""
    return {k: torch.from_numpy(np.asarray(v, np.int64)) for k, v in batch.items()}
