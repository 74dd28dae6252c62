"""Multi-head cross-attention on ``F.scaled_dot_product_attention``, laid out like
``nn.MultiheadAttention`` so that checkpoints of the reference (which uses it) load unchanged."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class CrossAttention(nn.Module):
    """Queries ``[N, Lq, D]`` attend over keys/values ``[N, Lk, D]`` -> ``[N, Lq, D]``.

    Parameters have ``nn.MultiheadAttention``'s names and shapes: ``in_proj_weight [3D, D]``,
    ``in_proj_bias [3D]``, ``out_proj``, and with ``null_kv`` its ``add_bias_kv`` pair
    ``bias_k``/``bias_v [1, 1, D]``, a learned key/value appended after the projection.

    Why ``null_kv``: a frame has ONE audio embedding. Attention over a single key is a softmax
    over one value (always 1): the output ignores the query and the query/key weights never get
    a gradient. The learned null key gives each query a choice between reading the audio and
    reading nothing (``bias_v`` starts at zero), so the attention is a learned per-token gate.
    """

    def __init__(self, dim: int, num_heads: int, dropout: float = 0.0, null_kv: bool = False):
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"fusion width {dim} is not a multiple of fusion.num_heads {num_heads}")
        self.num_heads = num_heads
        self.dropout = dropout
        self.in_proj_weight = nn.Parameter(torch.empty(3 * dim, dim))
        self.in_proj_bias = nn.Parameter(torch.zeros(3 * dim))
        self.out_proj = nn.Linear(dim, dim)
        nn.init.xavier_uniform_(self.in_proj_weight)
        nn.init.zeros_(self.out_proj.bias)
        if null_kv:
            self.bias_k = nn.Parameter(torch.empty(1, 1, dim))
            self.bias_v = nn.Parameter(torch.zeros(1, 1, dim))
            nn.init.xavier_normal_(self.bias_k)
        else:
            self.bias_k = self.bias_v = None

    def _heads(self, x: Tensor) -> Tensor:
        """``[N, L, D]`` -> ``[N, H, L, D / H]``."""
        n, length, dim = x.shape
        return x.view(n, length, self.num_heads, dim // self.num_heads).transpose(1, 2)

    def forward(self, query: Tensor, key_value: Tensor) -> Tensor:
        """``query [N, Lq, D]`` attends over ``key_value [N, Lk, D]`` -> ``[N, Lq, D]``."""
        w_q, w_k, w_v = self.in_proj_weight.chunk(3)
        b_q, b_k, b_v = self.in_proj_bias.chunk(3)
        q = F.linear(query, w_q, b_q)
        k = F.linear(key_value, w_k, b_k)
        v = F.linear(key_value, w_v, b_v)
        if self.bias_k is not None:
            n = k.shape[0]
            # Cast: under autocast k is bf16 while the parameter stays fp32.
            k = torch.cat([k, self.bias_k.to(k.dtype).expand(n, -1, -1)], dim=1)
            v = torch.cat([v, self.bias_v.to(v.dtype).expand(n, -1, -1)], dim=1)
        out = F.scaled_dot_product_attention(
            self._heads(q),
            self._heads(k),
            self._heads(v),
            dropout_p=self.dropout if self.training else 0.0,
        )
        n, _, length, _ = out.shape
        return self.out_proj(out.transpose(1, 2).reshape(n, length, -1))
