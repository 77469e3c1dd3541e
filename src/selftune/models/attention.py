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


@contextmanager
def attention_implementation(config, name: str):
    """Use the registered attention function ``name`` while inside; the model's own one after."""
    previous = config._attn_implementation
    config._attn_implementation = name
    try:
        yield
    finally:
        config._attn_implementation = previous
