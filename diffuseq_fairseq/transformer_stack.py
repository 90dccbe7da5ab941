"""A post-LayerNorm transformer encoder stack (BERT's layout) on torch's scaled-dot-product attention.

Written out (rather than nn.TransformerEncoderLayer) because the denoiser needs one thing torch's
layer cannot do: attend from target positions to cached source keys/values, so that under the
``--encode-source-once`` option the source is encoded once per sentence and reused by every
denoising step and every MBR candidate.
"""
from typing import List, Optional, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F

KeyValue = Tuple[torch.Tensor, torch.Tensor]


class EncoderLayer(nn.Module):
    """Self-attention + GELU feed-forward, each followed by residual and LayerNorm (eps 1e-12)."""

    def __init__(self, dim: int, heads: int, ffn_dim: int, dropout: float, attention_dropout: float):
        super().__init__()
        if dim % heads:
            raise ValueError(f"hidden size {dim} is not divisible by {heads} attention heads")
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.out_proj = nn.Linear(dim, dim)
        self.attn_norm = nn.LayerNorm(dim, eps=1e-12)
        self.fc1 = nn.Linear(dim, ffn_dim)
        self.fc2 = nn.Linear(ffn_dim, dim)
        self.ffn_norm = nn.LayerNorm(dim, eps=1e-12)
        self.dropout = dropout
        self.attention_dropout = attention_dropout

    def _split(self, x: torch.Tensor) -> torch.Tensor:
        b, length, dim = x.shape
        return x.view(b, length, self.heads, dim // self.heads).transpose(1, 2)

    def forward(
        self,
        x: torch.Tensor,
        key_mask: Optional[torch.Tensor],
        prefix: Optional[KeyValue] = None,
    ) -> Tuple[torch.Tensor, KeyValue]:
        """x: [B, L, D]; key_mask: [B, L_keys] True where a key may be attended (None = all).

        ``prefix`` are cached keys/values placed before this block's own keys (the source).
        Returns the new hidden states and this block's own (k, v) for caching.
        """
        q, k, v = (self._split(part) for part in self.qkv(x).chunk(3, dim=-1))
        own = (k, v)
        if prefix is not None:
            k = torch.cat([prefix[0], k], dim=2)
            v = torch.cat([prefix[1], v], dim=2)
        attn_mask = None if key_mask is None else key_mask[:, None, None, :]
        attended = F.scaled_dot_product_attention(
            q, k, v, attn_mask=attn_mask, dropout_p=self.attention_dropout if self.training else 0.0
        )
        attended = attended.transpose(1, 2).reshape(x.shape)
        x = self.attn_norm(x + F.dropout(self.out_proj(attended), self.dropout, self.training))
        hidden = F.dropout(self.fc2(F.gelu(self.fc1(x))), self.dropout, self.training)
        return self.ffn_norm(x + hidden), own


class EncoderStack(nn.Module):
    def __init__(self, layers: int, dim: int, heads: int, ffn_dim: int, dropout: float, attention_dropout: float):
        super().__init__()
        self.layers = nn.ModuleList(
            EncoderLayer(dim, heads, ffn_dim, dropout, attention_dropout) for _ in range(layers)
        )

    def forward(self, x: torch.Tensor, key_mask: Optional[torch.Tensor]) -> Tuple[torch.Tensor, List[KeyValue]]:
        cache = []
        for layer in self.layers:
            x, kv = layer(x, key_mask)
            cache.append(kv)
        return x, cache

    def forward_with_prefix(
        self, x: torch.Tensor, prefix: List[KeyValue], key_mask: torch.Tensor
    ) -> torch.Tensor:
        """Run target positions against per-layer cached source keys/values."""
        for layer, kv in zip(self.layers, prefix):
            x, _ = layer(x, key_mask, prefix=kv)
        return x
