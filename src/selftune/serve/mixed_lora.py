"""Batches whose tokens go through different LoRA adapters, in two matrix products per layer.

PEFT can mix adapters in one batch (``adapter_names=``), but in each of the model's LoRA layers it
builds every adapter's row list in Python and runs the adapters one after another; with 210 layers
and a few hundred tokens a step that costs more than the model itself (31% of the throughput of a
single-adapter batch measured on this CPU). PEFT has no faster path, so this one is written here:

    delta = ((x @ A_all.T) * owner_mask) @ B_all.T

``A_all`` stacks the A matrices of every loaded adapter (ranks side by side), ``B_all`` their B
matrices times their scaling, and ``owner_mask`` keeps for each token only the rank columns of its
own adapter (none for base-model tokens). The cost is that of one LoRA of rank sum(r), whatever the
number of adapters in the batch: small next to the base layer's product (8 adapters of rank 8 add
64 columns to a 576-wide layer). The hooks add the delta to the base layer's output while PEFT's own adapters are
switched off; plain LoRA only (DoRA and other variants go through PEFT's path).

The delta is computed in float32 even when the model runs in bf16: these products are tiny
(rank-wide), and on CPU a bf16 matmul this small costs ~18 us of dispatch against ~3 us in float32,
which made a single adapter add 40% to a decode step. Single-adapter batches take this path too.
"""

from __future__ import annotations

from contextlib import contextmanager

import torch


class MixedLoRA:
    def __init__(self):
        self.layers: list = []
        self.unsupported: set[str] = set()  # adapters with a LoRA variant or layer type not handled here
        self._order: list[str] = []  # every loaded adapter; its index is its place in the stacks
        self._hooked: set[int] = set()
        self._stacks: dict[int, tuple | None] = {}  # by layer: the stacked weights of its adapters
        self._step: tuple | None = None  # (token owners, masks by column layout) while applied

    def attach(self, model) -> None:
        """Find the LoRA layers (again: after an adapter is loaded or deleted) and hook the new ones."""
        from peft.tuners.lora import Linear, LoraLayer

        self.layers, self.unsupported = [], set()
        for module in model.modules():
            if not isinstance(module, LoraLayer):
                continue
            names = set(module.lora_A) | set(getattr(module, "lora_embedding_A", {}))
            if not isinstance(module, Linear):
                self.unsupported |= names
                continue
            self.unsupported |= set(module.lora_variant) | {n for n, bias in module.lora_bias.items() if bias}
            self.layers.append(module)
            if id(module) not in self._hooked:
                module.register_forward_hook(self._add_delta)
                self._hooked.add(id(module))
        self._order = sorted({n for layer in self.layers for n in layer.lora_A})
        self._stacks.clear()

    def supports(self, adapters: set[str]) -> bool:
        return not adapters & self.unsupported

    @contextmanager
    def applied(self, names: list[str]):
        """Within: every LoRA layer adds, to each token, the delta of the adapter named for it (BASE or
        an unknown name: none)."""
        switched = [layer for layer in self.layers if not layer._disable_adapters]
        for layer in switched:  # PEFT's own switch (what disable_adapter() sets), without its model walk
            layer._disable_adapters = True
        try:
            with self.owning(names):
                yield
        finally:
            for layer in switched:
                layer._disable_adapters = False

    @contextmanager
    def owning(self, names: list[str]):
        """Within: :meth:`add_fused_delta` adds each token's own adapter delta (no hooks, no PEFT switch:
        for :mod:`selftune.serve.fast_decoder`, which calls the weights directly)."""
        position = {name: i for i, name in enumerate(self._order)}
        owners = [position.get(n, -1) for n in names]
        # base-model tokens only: no deltas
        self._step = (torch.tensor(owners), {}) if max(owners, default=-1) >= 0 else None
        try:
            yield
        finally:
            self._step = None

    def add_fused_delta(self, layers: list, x: torch.Tensor, output: torch.Tensor) -> torch.Tensor:
        """``output`` of the concatenated base weights of ``layers`` (LoRA layers sharing the input ``x``,
        such as q/k/v) plus each token's delta, in one stacked product: A of every adapter and layer
        stacked, B block-diagonal (exact: the blocks off the diagonal add zeros)."""
        if self._step is None:
            return output
        stack = self._fused_stack(layers)
        if stack is None:
            return output
        return output + self._delta(stack, x).to(output.dtype)

    def _delta(self, stack, x):
        owners, masks = self._step
        a_all, b_all, columns, key = stack
        if key not in masks:
            masks[key] = (owners[:, None] == columns[None, :]).to(device=x.device, dtype=a_all.dtype)
        return ((x.reshape(len(owners), -1).to(a_all.dtype) @ a_all.T) * masks[key]) @ b_all.T

    def _fused_stack(self, layers: list):
        key = tuple(id(layer) for layer in layers)
        if key not in self._stacks:
            stacks = [self._stack(layer) if id(layer) in self._hooked else None for layer in layers]
            outs = [getattr(layer, "out_features", None) or layer.weight.shape[0] for layer in layers]
            present = [(s, row) for s, row in zip(stacks, torch.tensor([0, *outs]).cumsum(0).tolist(), strict=False)
                       if s is not None]
            if not present:
                self._stacks[key] = None
            elif len(layers) == 1:
                self._stacks[key] = stacks[0]
            else:
                a_all = torch.cat([s[0] for s, _ in present])
                b_all = torch.zeros(sum(outs), len(a_all))
                col = 0
                for (_, b, _, _), row in present:
                    b_all[row:row + b.shape[0], col:col + b.shape[1]] = b
                    col += b.shape[1]
                columns = torch.cat([s[2] for s, _ in present])
                self._stacks[key] = (a_all, b_all, columns, tuple(columns.tolist()))
        return self._stacks[key]

    def _add_delta(self, layer, args, output):
        if self._step is None:
            return None
        stack = self._stack(layer)
        if stack is None:  # no adapter touches this layer
            return None
        return output + self._delta(stack, args[0]).reshape(output.shape).to(output.dtype)

    def _stack(self, layer):
        """(A_all [R, in], B_all * scaling [out, R] (float32), the adapter index of each of the R columns, those
        indices as a hashable key), built once per layer after each attach."""
        if id(layer) not in self._stacks:
            present = [(i, n) for i, n in enumerate(self._order) if n in layer.lora_A]
            if not present:
                self._stacks[id(layer)] = None
            else:
                a_all = torch.cat([layer.lora_A[n].weight.float() for _, n in present])
                b_all = torch.cat([layer.lora_B[n].weight.float() * layer.scaling[n] for _, n in present], dim=1)
                columns = torch.cat([torch.full((layer.lora_A[n].weight.shape[0],), i) for i, n in present])
                self._stacks[id(layer)] = (a_all, b_all, columns, tuple(columns.tolist()))
        return self._stacks[id(layer)]
