"""The key/value cache of every running request, in one preallocated pool of fixed-size pages.

Requests join and leave the running batch between decode steps; each holds a list of pages big
enough for its prompt and its longest answer, reserved when it is admitted (so a running request
never waits for memory). Pages make any free memory usable by any request: no fragmentation.
Written by hand because transformers' caches hold one batch of equal-length rows, not a changing
set of ragged requests.
"""

from __future__ import annotations

import torch

PAGE = 16  # tokens per page


class KVPool:
    def __init__(self, layers: int, kv_heads: int, head_dim: int, capacity_tokens: int, dtype: torch.dtype,
                 device: torch.device):
        pages = max(1, capacity_tokens // PAGE)
        self.capacity = pages * PAGE
        # [layer] -> [kv_heads, capacity, head_dim]: a request's tokens are gathered by slot number
        self.keys = [torch.zeros(kv_heads, self.capacity, head_dim, dtype=dtype, device=device) for _ in range(layers)]
        self.values = [torch.zeros_like(k) for k in self.keys]
        self.free_pages = list(range(pages - 1, -1, -1))

    def pages_for(self, tokens: int) -> int:
        return -(-tokens // PAGE)

    def can_reserve(self, tokens: int) -> bool:
        return self.pages_for(tokens) <= len(self.free_pages)

    def reserve(self, tokens: int) -> list[int]:
        count = self.pages_for(tokens)
        if count > len(self.free_pages):
            raise MemoryError(f"KV pool: {tokens} tokens don't fit in the {len(self.free_pages) * PAGE} free")
        return [self.free_pages.pop() for _ in range(count)]

    def release(self, pages: list[int]) -> None:
        self.free_pages.extend(reversed(pages))
        pages.clear()

    @staticmethod
    def slots(pages: list[int], start: int, stop: int) -> torch.Tensor:
        """Pool slots of a request's token positions [start, stop)."""
        positions = torch.arange(start, stop)
        return torch.tensor(pages, dtype=torch.long)[positions // PAGE] * PAGE + positions % PAGE
