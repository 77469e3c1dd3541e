"""Pieces of attention shared by training (packed rows) and serving (the running batch): the
batched-matmul attention both use, and the switch that points a model at a registered attention
function. They live below both stages so that ``serve`` never imports ``train``."""

from __future__ import annotations

from contextlib import contextmanager

import torch


def attend(q, k, v, mask, scale: float, dropout: float):
    """Plain attention as batched matmuls: segments are short (tens to hundreds of tokens), where
    PyTorch's CPU flash kernel (tiled for long sequences) spends most of its time on tiles of padding;
    its backward was ~25% of a training step here, this one is a few percent."""
    scores = torch.matmul(q, k.transpose(-1, -2)).float() * scale  # [S, H, Lq, Lk]
    scores = scores.masked_fill(~mask, float("-inf"))
    weights = torch.softmax(scores, dim=-1).to(v.dtype)
    if dropout:
        weights = torch.nn.functional.dropout(weights, p=dropout)
    return torch.matmul(weights, v)  # [S, H, Lq, D]


def gather_segments(states: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """[H, T, D] gathered at positions [S, L] -> [S, H, L, D]: each segment's rows of a packed row (training)
    or of the KV pool (serving). index_select rather than fancy indexing: its backward is index_add_,
    several times faster on CPU than the accumulating index_put_ that advanced indexing's backward uses."""
    return states.index_select(1, index.reshape(-1)).unflatten(1, index.shape).transpose(0, 1)


def attend_segments(qs, ks, vs, mask, scaling: float | None, dropout: float, scatter_index):
    """Each segment's queries [S, H, Lq, D] over its own keys and values [S, Hkv, Lk, D] (grouped-query
    heads shared), scattered back to the order of the tokens: [T, H, D]. Both packed training rows and
    serving steps gather their segments first, then end here."""
    groups = qs.shape[1] // ks.shape[1]
    if groups > 1:  # grouped-query attention: share each key/value head among its query heads
        ks = ks.repeat_interleave(groups, dim=1)
        vs = vs.repeat_interleave(groups, dim=1)
    out = attend(qs, ks.to(qs.dtype), vs.to(qs.dtype), mask,
                 scaling if scaling is not None else qs.shape[-1] ** -0.5, dropout)  # [S, H, Lq, D]
    s, h, lq, d = out.shape
    return out.transpose(1, 2).reshape(s * lq, h, d).index_select(0, scatter_index)  # [T, H, D]


@contextmanager
def attention_implementation(config, name: str):
    """Use the registered attention function ``name`` while inside; the model's own one after."""
    previous = config._attn_implementation
    config._attn_implementation = name
    try:
        yield
    finally:
        config._attn_implementation = previous
