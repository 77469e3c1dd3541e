"""The key/value cache of every running request, in one preallocated pool of fixed-size pages.

Requests join and leave the running batch between decode steps; each holds a list of pages that
grows with it. Pages make any free memory usable by any request: no fragmentation. Written by hand
because transformers' caches hold one batch of equal-length rows, not a changing set of ragged requests.

Prefix caching, as vLLM does it: a full page is known by a hash of every token up to its end (and the
adapter that computed it), so a request whose prompt starts like an earlier one (the same system
prompt, few-shot examples, the earlier turns of a chat) reuses those pages instead of computing them.
A page nobody uses any more keeps its contents until its memory is needed (least recently used first).
"""

from __future__ import annotations

import hashlib
from array import array
from collections import OrderedDict

import torch

PAGE = 16  # tokens per page


class KVPool:
    def __init__(self, layers: int, kv_heads: int, head_dim: int, capacity_tokens: int, dtype: torch.dtype,
                 device: torch.device):
        pages = max(1, capacity_tokens // PAGE)
        self.capacity = pages * PAGE
        self.kv_heads, self.head_dim = kv_heads, head_dim
        # [layer] -> [2 (keys, values), kv_heads, capacity, head_dim]: a request's tokens are gathered by slot
        # number; keys and values of a layer in one tensor, so that one index_select gathers both, already in
        # the [segment, head, position, dim] order attention multiplies in (see flat_index)
        self.kv = [torch.zeros(2, kv_heads, self.capacity, head_dim, dtype=dtype, device=device)
                   for _ in range(layers)]
        self.keys = [kv[0] for kv in self.kv]  # [kv_heads, capacity, head_dim] views
        self.values = [kv[1] for kv in self.kv]
        self.free_pages = list(range(pages - 1, -1, -1))
        self.refs = [0] * pages
        self.by_hash: dict[bytes, int] = {}  # prefix hash -> page holding it
        self.hash_of: dict[int, bytes] = {}  # page -> its prefix hash
        self.idle: OrderedDict[int, None] = OrderedDict()  # cached pages nobody uses, least recently used first

    def pages_for(self, tokens: int) -> int:
        return -(-tokens // PAGE)

    @property
    def available(self) -> int:
        return len(self.free_pages) + len(self.idle)

    def can_reserve(self, tokens: int) -> bool:
        return self.pages_for(tokens) <= self.available

    def reserve(self, tokens: int) -> list[int]:
        count = self.pages_for(tokens)
        if count > self.available:
            raise MemoryError(f"KV pool: {tokens} tokens don't fit in the {self.available * PAGE} free")
        pages = []
        for _ in range(count):
            if self.free_pages:
                page = self.free_pages.pop()
            else:  # reuse the memory of the least recently used cached page
                page, _ = self.idle.popitem(last=False)
                del self.by_hash[self.hash_of.pop(page)]
            self.refs[page] = 1
            pages.append(page)
        return pages

    def release(self, pages: list[int]) -> None:
        for page in pages:
            self.refs[page] -= 1
            if self.refs[page] == 0:
                if page in self.hash_of:
                    self.idle[page] = None  # keeps its contents until the memory is needed
                else:
                    self.free_pages.append(page)
        pages.clear()

    def match(self, hashes: list[bytes]) -> list[int]:
        """Pages holding the longest cached run of these prefix hashes; each is now also used by the caller."""
        pages = []
        for h in hashes:
            page = self.by_hash.get(h)
            if page is None:
                break
            if self.refs[page] == 0:
                del self.idle[page]
            self.refs[page] += 1
            pages.append(page)
        return pages

    def remember(self, page: int, prefix_hash: bytes) -> None:
        """Record that ``page`` (full) holds the tokens whose prefix hash is ``prefix_hash``."""
        if prefix_hash not in self.by_hash and page not in self.hash_of:
            self.by_hash[prefix_hash] = page
            self.hash_of[page] = prefix_hash

    @staticmethod
    def prefix_hashes(adapter: str, ids: list[int], known: list[bytes], length: int | None = None) -> list[bytes]:
        """``known`` extended with the hashes of the further full pages of ``ids[:length]``. Each hash covers
        the adapter and every token up to its page's end (a cryptographic hash: a collision would serve
        another prompt's keys)."""
        hashes = list(known)
        for page in range(len(hashes), (len(ids) if length is None else length) // PAGE):
            h = hashlib.blake2b(hashes[-1] if hashes else adapter.encode(), digest_size=16)
            h.update(array("q", ids[page * PAGE:(page + 1) * PAGE]).tobytes())
            hashes.append(h.digest())
        return hashes

    def flat_index(self, slots: torch.Tensor) -> torch.Tensor:
        """Rows of a layer's ``kv.view(-1, head_dim)`` holding the keys and values of ``slots`` [...]:
        [2, ..., kv_heads] + slots' trailing dim, e.g. slots [S, L] -> [2, S, kv_heads, L]."""
        heads = (torch.arange(2)[:, None] * self.kv_heads + torch.arange(self.kv_heads)[None, :]) * self.capacity
        heads = heads.view(2, *([1] * (slots.dim() - 1)), self.kv_heads, 1).to(slots.device)
        return heads + slots.unsqueeze(-2).unsqueeze(0)

    @staticmethod
    def slots(pages: list[int], start: int, stop: int) -> torch.Tensor:
        """Pool slots of a request's token positions [start, stop)."""
        positions = torch.arange(start, stop)
        return torch.tensor(pages, dtype=torch.long)[positions // PAGE] * PAGE + positions % PAGE
