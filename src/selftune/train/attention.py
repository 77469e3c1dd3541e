"""Attention over a packed row, one example at a time, without padding in the linear layers.

transformers lets a model use a registered attention function (``AttentionInterface``); ours
receives the :class:`~selftune.train.packing.AttentionPlan` of the batch as a keyword argument,
gathers each segment's queries and keys out of the packed row, runs PyTorch's
``scaled_dot_product_attention`` on the small [segments, heads, length, dim] batch and scatters the
result back. Written by hand because transformers' own packed-sequence support needs
flash-attention (GPU only); on a CPU the block-diagonal dense mask would cost O(row²).
"""

from __future__ import annotations

from transformers import AttentionInterface

from selftune.models.attention import attend_segments, attention_implementation, gather_segments
from selftune.train.packing import AttentionPlan

IMPLEMENTATION = "selftune_packed"


def packed_attention(module, query, key, value, attention_mask, scaling=None, dropout=0.0,
                     packed_plan: AttentionPlan | None = None, **kwargs):
    """query [1, H, T, D], key/value [1, Hkv, T, D] -> output [1, T, H, D] (the layout callers expect)."""
    if packed_plan is None:
        raise RuntimeError(f"the {IMPLEMENTATION!r} attention needs packed_plan=; use the model outside "
                           "selftune.train.attention.packed_attention_enabled() for generation")
    plan = packed_plan
    qs = gather_segments(query[0], plan.query_index)  # [S, H, Lq, D]
    ks = gather_segments(key[0], plan.key_index)  # [S, Hkv, Lk, D]
    vs = gather_segments(value[0], plan.key_index)
    out = attend_segments(qs, ks, vs, plan.mask, scaling, dropout, plan.scatter_index)  # [T, H, D]
    return out.unsqueeze(0), None


AttentionInterface.register(IMPLEMENTATION, packed_attention)


def packed_attention_enabled(model):
    """Switch ``model`` (a transformers model, PEFT-wrapped or not) to packed attention for a while."""
    return attention_implementation(_config(model), IMPLEMENTATION)


def _config(model):
    while not hasattr(model, "config") and hasattr(model, "base_model"):
        model = model.base_model
    return model.config
