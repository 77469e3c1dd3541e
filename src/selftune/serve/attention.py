"""Attention for a step of the running batch: new tokens of many requests, each over its own cache.

A step's tokens (a prompt for a request that just joined, one token for each request that is
decoding) go through the model as one batch of single-token rows, ``[T, 1]``: the linear layers
see only real tokens, and PEFT can pick each token's adapter. This attention function, registered
with transformers like :mod:`selftune.train.attention`, writes each token's key and value into the
:class:`~selftune.serve.kv_pool.KVPool` and lets each request's queries attend to its own cached
keys, causally. Written by hand because transformers' continuous batching needs its own generate
loop (no PEFT mixed-adapter batches), and its padded caches would attend over padding.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from transformers import AttentionInterface

from selftune.models.attention import attend_segments, attention_implementation, gather_segments
from selftune.serve.kv_pool import KVPool

IMPLEMENTATION = "selftune_serving"


@dataclass
class Segment:
    """One request's part of a step: ``length`` new tokens after ``past`` cached ones."""

    pages: list[int]
    past: int
    length: int


@dataclass
class StepPlan:
    pool: KVPool
    write_slots: torch.Tensor  # [T] pool slot of each new token
    query_index: torch.Tensor  # [S, Lq] row of each segment's query tokens (padded with 0)
    key_slots: torch.Tensor  # [S, Lk] pool slots of each segment's keys, cached and new (padded with 0)
    mask: torch.Tensor  # [S, 1, Lq, Lk] which keys each query may see
    scatter_index: torch.Tensor  # [T] where each token's output sits in the flattened [S * Lq] result
    unmasked: bool = False  # every query sees every key (decoding requests of equal length): no mask needed

    @classmethod
    def build(cls, pool: KVPool, segments: list[Segment], device: torch.device) -> StepPlan:
        lq = max(s.length for s in segments)
        lk = max(s.past + s.length for s in segments)
        query_index = torch.zeros(len(segments), lq, dtype=torch.long)
        key_slots = torch.zeros(len(segments), lk, dtype=torch.long)
        mask = torch.zeros(len(segments), 1, lq, lk, dtype=torch.bool)
        write, scatter, row = [], [], 0
        for i, seg in enumerate(segments):
            total = seg.past + seg.length
            query_index[i, :seg.length] = torch.arange(row, row + seg.length)
            key_slots[i, :total] = KVPool.slots(seg.pages, 0, total)
            # query j (position past + j) sees keys 0..past + j; padded query rows see key 0 (never used)
            positions = torch.arange(lq).unsqueeze(1) + seg.past
            mask[i, 0] = torch.arange(lk).unsqueeze(0) <= positions
            write.append(key_slots[i, seg.past:total])
            scatter.append(torch.arange(seg.length) + i * lq)
            row += seg.length
        unmasked = all(seg.length == 1 and seg.past + 1 == lk for seg in segments)
        return cls(pool, torch.cat(write).to(device), query_index.to(device), key_slots.to(device),
                   mask.to(device), torch.cat(scatter).to(device), unmasked)


def serving_attention(module, query, key, value, attention_mask, scaling=None, dropout=0.0,
                      step_plan: StepPlan | None = None, **kwargs):
    """query [T, H, 1, D], key/value [T, Hkv, 1, D] -> output [T, 1, H, D]."""
    if step_plan is None:
        raise RuntimeError(f"the {IMPLEMENTATION!r} attention needs step_plan=")
    plan, layer = step_plan, module.layer_idx
    pool_k, pool_v = plan.pool.keys[layer], plan.pool.values[layer]  # [Hkv, capacity, D]
    pool_k.index_copy_(1, plan.write_slots, key[:, :, 0].transpose(0, 1).to(pool_k.dtype))
    pool_v.index_copy_(1, plan.write_slots, value[:, :, 0].transpose(0, 1).to(pool_v.dtype))
    q = query[:, :, 0]  # [T, H, D]
    qs = q.index_select(0, plan.query_index.reshape(-1)).unflatten(0, plan.query_index.shape).transpose(1, 2)
    ks = gather_segments(pool_k, plan.key_slots)  # [S, Hkv, Lk, D]
    vs = gather_segments(pool_v, plan.key_slots)
    out = attend_segments(qs, ks, vs, plan.mask, scaling, 0.0, plan.scatter_index)  # [T, H, D]
    return out.unsqueeze(1), None


AttentionInterface.register(IMPLEMENTATION, serving_attention)


def serving_attention_enabled(config):
    return attention_implementation(config, IMPLEMENTATION)
