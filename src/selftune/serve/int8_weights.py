"""Int8 weights for decode steps: a quarter of fp32's bytes, so a CPU's memory bandwidth serves 4x the steps.

A decode step at batch 1 reads every weight once and does almost nothing with it: on a 2-core CPU the
fp32 step of SmolLM2-135M is ~540 MB read at ~20 GB/s, whatever the vector units. Symmetric int8 per
output row (one scale per row, round to nearest) is what llama.cpp's Q8_0 does per block of 32; the
product runs in PyTorch's weight-only int8 kernel (``aten._weight_int8pack_mm``, the one gpt-fast uses),
vectorized for AVX2 and AVX512 alike, which takes bf16 activations and widens the weights on the fly.

The kernel wins only for few rows (:data:`KERNEL_MAX_ROWS`): against oneDNN's fp32 product it is ~2x faster
at 1-4 rows and even at ~12, against bf16 on AMX tiles only at 1-2; longer steps (prompts, large batches)
multiply the model's own weights instead. Those are rounded to the same
int8 grid in place (:func:`round_in_place`), so every path — prefill, decode, transformers' modules for
other LoRA variants — computes with one set of weights and a request's answer does not depend on which
kernel its steps happened to take. What stays: activations are rounded to bf16 for the kernel.

``_weight_int8pack_mm`` is a private ATen op of the pinned torch: tests/serve/test_private_canary.py
checks that it exists and computes ``x @ (values * scales).T``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

# Rows up to which the kernel beats the model's own (prepacked) weights in that dtype; measured over 30 layers'
# weights streamed from memory, 2-core Intel Xeon (AMX), also with AVX2 kernels only (docs/benchmarks.md)
KERNEL_MAX_ROWS = {torch.float32: 8, torch.bfloat16: 2}
ACTIVATION_DTYPE = torch.bfloat16  # what the kernel is fastest with on AVX2 and AVX512 alike


@dataclass(frozen=True)
class Int8Weight:
    """A weight [out, in] as int8 values and one scale per output row (x @ W.T == kernel(x, values, scales))."""

    values: torch.Tensor  # [out, in] int8
    scales: torch.Tensor  # [out] in ACTIVATION_DTYPE

    def dequantized(self, dtype: torch.dtype) -> torch.Tensor:
        # products of a 7-bit integer and an 8-bit-mantissa scale are exact in float32
        return (self.values.float() * self.scales.float()[:, None]).to(dtype)


def quantize(weight: torch.Tensor) -> Int8Weight:
    """Symmetric per-row int8: each row's largest magnitude maps to 127."""
    w = weight.detach().float()
    scales = (w.abs().amax(dim=1) / 127).clamp_min(torch.finfo(torch.float32).tiny).to(ACTIVATION_DTYPE)
    values = torch.round(w / scales.float()[:, None]).clamp(-127, 127).to(torch.int8)
    return Int8Weight(values.contiguous(), scales.contiguous())


def round_in_place(weight: torch.Tensor) -> Int8Weight:
    """Quantize ``weight`` and overwrite it with its int8-grid values (views of it see them too)."""
    quantized = quantize(weight)
    with torch.no_grad():
        weight.copy_(quantized.dequantized(weight.dtype))
    return quantized


def use_kernel(x: torch.Tensor) -> bool:
    """Is the int8 kernel the faster way to multiply ``x`` [N, in]?"""
    return x.shape[0] <= KERNEL_MAX_ROWS.get(x.dtype, 0)


def linear(x: torch.Tensor, weight: Int8Weight) -> torch.Tensor:
    """x [N, in] @ W.T -> [N, out] in x's dtype."""
    out = torch.ops.aten._weight_int8pack_mm(x.to(ACTIVATION_DTYPE).contiguous(), weight.values, weight.scales)
    return out.to(x.dtype)
