"""Attention over a packed row, one example at a time, without padding in the linear layers.

transformers lets a model use a registered attention function (``AttentionInterface``); ours
receives the :class:`~selftune.train.packing.AttentionPlan` of the batch as a keyword argument,
gathers each segment's queries and keys out of the packed row, runs PyTorch's
``scaled_dot_product_attention`` on the small [segments, heads, length, dim] batch and scatters the
result back. Written by hand because transformers' own packed-sequence support needs
flash-attention (GPU only); on a CPU the block-diagonal dense mask would cost O(row²).
"""

from __future__ import annotations

import torch
from transformers import AttentionInterface

from selftune.models.attention import attend, attention_implementation
from selftune.train.packing import AttentionPlan

IMPLEMENTATION = "selftune_packed"


def packed_attention(module, query, key, value, attention_mask, scaling=None, dropout=0.0,
                     packed_plan: AttentionPlan | None = None, **kwargs):
    """query [1, H, T, D], key/value [1, Hkv, T, D] -> output [1, T, H, D] (the layout callers expect)."""
    if packed_plan is None:
        raise RuntimeError(f"the {IMPLEMENTATION!r} attention needs packed_plan=; use the model outside "
                           "selftune.train.attention.packed_attention_enabled() for generation")
    plan = packed_plan
    # index_select rather than fancy indexing: its backward is index_add_, several times faster on
    # CPU than the accumulating index_put_ that advanced indexing's backward uses
    qs = _gather(query[0], plan.query_index)  # [S, H, Lq, D]
    ks = _gather(key[0], plan.key_index)  # [S, Hkv, Lk, D]
    vs = _gather(value[0], plan.key_index)
    groups = qs.shape[1] // ks.shape[1]
    if groups > 1:  # grouped-query attention: share each key/value head among its query heads
        ks = ks.repeat_interleave(groups, dim=1)
        vs = vs.repeat_interleave(groups, dim=1)
    out = attend(qs, ks, vs, plan.mask, scaling if scaling is not None else qs.shape[-1] ** -0.5, dropout)
    s, h, lq, d = out.shape
    out = out.transpose(1, 2).reshape(s * lq, h, d).index_select(0, plan.scatter_index)  # [T, H, D]
    return out.unsqueeze(0), None


def _gather(states: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """[H, T, D] gathered at index [S, L] -> [S, H, L, D]."""
    return states.index_select(1, index.reshape(-1)).unflatten(1, index.shape).transpose(0, 1)


AttentionInterface.register(IMPLEMENTATION, packed_attention)


def packed_attention_enabled(model):
    """Switch ``model`` (a transformers model, PEFT-wrapped or not) to packed attention for a while."""
    return attention_implementation(_config(model), IMPLEMENTATION)


def _config(model):
    while not hasattr(model, "config") and hasattr(model, "base_model"):
        model = model.base_model
    return model.config
