"""Data parallelism for ``accelerate launch`` / ``torchrun``: the same entry point on N processes.

Each process takes every N-th example of each step, and the gradients are summed across processes
before the optimizer step. The loss of every process is already divided by the *whole* step's
trained-token count (every process knows the whole step list, as the data order is seeded), so the
sum is exactly the single-process gradient. Written with plain ``torch.distributed`` (one flat
all-reduce per step) rather than the DDP wrapper: packed rows differ in shape between processes and
a process may hold no example at all in a small step, which DDP's bucketed hooks don't allow.
Only the first process writes checkpoints, events and the output folder.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from selftune.errors import SelftuneError


@dataclass(frozen=True)
class Distributed:
    rank: int = 0
    world_size: int = 1
    local_world_size: int = 1

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def shard(self, items: list) -> list:
        return items[self.rank::self.world_size] if self.enabled else items

    def sum_gradients(self, params: list[torch.nn.Parameter]) -> None:
        if not self.enabled:
            return
        grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
        flat = torch.cat([g.reshape(-1).float() for g in grads])
        dist.all_reduce(flat)
        offset = 0
        for p in params:
            n = p.numel()
            p.grad = flat[offset:offset + n].view_as(p).to(p.dtype)
            offset += n

    def sum(self, *values: float) -> list[float]:
        """Sum plain numbers (loss sums, token counts) over processes."""
        if not self.enabled:
            return list(values)
        tensor = torch.tensor(values, dtype=torch.float64)
        dist.all_reduce(tensor)
        return tensor.tolist()

    def broadcast(self, value: int) -> int:
        """The first process's ``value`` on every process (decisions that must agree: stop, plan)."""
        if not self.enabled:
            return value
        tensor = torch.tensor([value], dtype=torch.long)
        dist.broadcast(tensor, src=0)
        return int(tensor.item())

    def check_in_sync(self, params: list[torch.nn.Parameter]) -> None:
        """Every process must hold the same weights; compared at each checkpoint, a cheap guard
        against a silent divergence (a process that skipped a step or reduced different grads)."""
        if not self.enabled:
            return
        digest = torch.stack([torch.stack([p.detach().double().sum(), p.detach().double().abs().sum()])
                              for p in params]).reshape(-1)
        gathered = [torch.empty_like(digest) for _ in range(self.world_size)]
        dist.all_gather(gathered, digest)
        if any(not torch.equal(gathered[0], other) for other in gathered[1:]):
            raise SelftuneError("the training processes hold different weights: their steps diverged")

    def barrier(self) -> None:
        if self.enabled:
            dist.barrier()


def is_main_process() -> bool:
    """Whether this is the first process of a launch (or the only one): the one that reports."""
    return int(os.environ.get("RANK", "0")) == 0


def init_distributed(device: torch.device) -> Distributed:
    """Join the process group that ``accelerate launch`` / ``torchrun`` describe in the environment."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1:
        return Distributed()
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    return Distributed(rank=dist.get_rank(), world_size=dist.get_world_size(),
                       local_world_size=int(os.environ.get("LOCAL_WORLD_SIZE", world_size)))
