"""A lean forward pass for Llama-family decoders, for the serving step.

A decode step of a small model on a CPU is the matmuls that read every weight once, plus thousands of
small ops around them: through transformers' modules (and PEFT's hooked LoRA layers) SmolLM2-135M ran
211 matmuls and ~3,000 other ops per step, and the bf16 matmuls reordered their weight on every call.
This module runs the same arithmetic with fewer ops, reading the very same weight tensors:

- the q/k/v projections are one matmul, and gate/up another: their weights are concatenated once at
  load, and the model's own ``q_proj.weight`` (etc.) become views into the concatenation, so nothing
  is stored twice and transformers' path (used for other architectures and LoRA variants) still works;
- the LoRA deltas of the fused projections are fused too: one stacked A of every adapter and
  projection, one block-diagonal B (see :mod:`selftune.serve.mixed_lora`);
- grouped-query attention reads each key/value head once (queries regrouped per key head) instead
  of copying keys and values ``groups`` times, and a pure decode step (one token per request) needs no
  query gather or scatter;
- RMSNorm and rotary embeddings in as few ops as the formula allows, computed as transformers does
  (RMSNorm in float32, rotary in the model's dtype), so greedy answers stay equal token for token;
- optionally (``int8=True``, ``SELFTUNE_SERVE_WEIGHTS=int8``) the projections and the LM head on an int8
  grid (:mod:`selftune.serve.int8_weights`): a decode step reads a quarter of the fp32 bytes.

Written by hand because transformers has no lean CPU decode path for a ragged, paged batch, and its
modules cannot be fused without rewriting them (the same reason llama.cpp has its own graph).
"""

from __future__ import annotations

import torch

from selftune.serve import int8_weights
from selftune.serve.attention import StepPlan

SUPPORTED = {"LlamaForCausalLM", "MistralForCausalLM"}
PROJECTIONS = ("qkv", "o", "gate_up", "down")  # a layer's fused weights


def supported(model) -> bool:
    """True for the decoder shapes this forward reproduces exactly (no biases, SiLU MLP, full attention)."""
    config = model.config
    return (type(model).__name__ in SUPPORTED and not getattr(config, "attention_bias", False)
            and not getattr(config, "mlp_bias", False) and config.hidden_act == "silu"
            and getattr(config, "sliding_window", None) is None and not getattr(config, "pretraining_tp", 1) > 1)


def prepack(weight: torch.Tensor):
    """``weight`` [out, in] reordered once into oneDNN's blocked layout, or None where oneDNN can't.

    transformers' ``F.linear`` in bf16 goes through oneDNN too, but reorders the weight on every call:
    a decode step's matmuls took ~2x longer that way (and gives the very same bits). In float32 the
    packed product is also faster than MKL's sgemm (2x at 16 rows on this CPU), rounding differently
    in the last bits as any other BLAS would. This is what torch.compile's freezing pass does for CPU
    linears (``torch.ops.mkldnn``, private to torch: covered by a canary test)."""
    if weight.device.type != "cpu" or weight.dtype not in (torch.float32, torch.bfloat16) \
            or not torch.backends.mkldnn.is_available():
        return None
    try:
        return torch.ops.mkldnn._reorder_linear_weight(weight, 1)  # 1: tuned for decode steps' one row each
    except (AttributeError, RuntimeError):
        return None


def linear(x: torch.Tensor, weight: torch.Tensor, packed) -> torch.Tensor:
    if packed is None:
        return torch.nn.functional.linear(x, weight)
    return torch.ops.mkldnn._linear_pointwise(x, packed, None, "none", [], "")


def _base(linear):
    """The plain Linear under a PEFT LoRA layer (or the layer itself)."""
    return getattr(linear, "base_layer", linear)


def _fuse(linears) -> torch.Tensor:
    """One weight for several projections of the same input; each projection's weight becomes a view of
    its rows, so the memory is shared."""
    fused = torch.cat([_base(m).weight.data for m in linears])
    row = 0
    for m in linears:
        weight = _base(m).weight
        weight.data = fused[row:row + weight.shape[0]]
        row += weight.shape[0]
    return fused


class FastDecoder:
    """The decoder of a loaded transformers model (``lm``), run step by step over the KV pool."""

    def __init__(self, lm, packed: bool = True, int8: bool = False):
        self.lm = lm
        config = lm.config
        self.heads = config.num_attention_heads
        self.kv_heads = config.num_key_value_heads
        self.head_dim = getattr(config, "head_dim", None) or config.hidden_size // self.heads
        self.groups = self.heads // self.kv_heads
        self.scaling = self.head_dim ** -0.5
        decoder = lm.get_decoder()
        self.embed = decoder.embed_tokens
        self.rotary = decoder.rotary_emb
        self.norm_weight, self.norm_eps = decoder.norm.weight, decoder.norm.variance_epsilon
        self.layers = []
        for layer in decoder.layers:
            attn, mlp = layer.self_attn, layer.mlp
            self.layers.append({
                "attn_norm": layer.input_layernorm.weight, "mlp_norm": layer.post_attention_layernorm.weight,
                "eps": layer.input_layernorm.variance_epsilon,
                "qkv": _fuse([attn.q_proj, attn.k_proj, attn.v_proj]), "o": _base(attn.o_proj).weight,
                "gate_up": _fuse([mlp.gate_proj, mlp.up_proj]), "down": _base(mlp.down_proj).weight,
                "modules": {"qkv": [attn.q_proj, attn.k_proj, attn.v_proj], "o": [attn.o_proj],
                            "gate_up": [mlp.gate_proj, mlp.up_proj], "down": [mlp.down_proj]}})
        if int8:  # before prepacking: the packed copies (used by long steps) hold the same int8-grid values
            for layer in self.layers:
                layer["int8"] = {name: int8_weights.round_in_place(layer[name].data) for name in PROJECTIONS}
        # the packed copies are kept beside the plain weights (transformers' path and the embedding use those)
        if packed:
            for layer in self.layers:
                layer["packed"] = {name: prepack(layer[name]) for name in PROJECTIONS}
        head = lm.get_output_embeddings()
        self.head = head.weight if type(head) is torch.nn.Linear and head.bias is None else None
        # rounded like the rest (and so is the input embedding where it is tied to the head, as in Q8_0 GGUFs)
        self.head_int8 = int8_weights.round_in_place(self.head.data) if int8 and self.head is not None else None
        self.head_packed = prepack(self.head) if packed and self.head is not None else None

    def refresh(self, lm) -> None:
        """After PEFT wrapped the model (first adapter): the same decoder layers, now behind LoRA modules.
        Base weights are unchanged, so only the module lists are looked up again."""
        self.lm = lm
        decoder = lm.get_decoder()
        for layer, mine in zip(decoder.layers, self.layers, strict=True):
            attn, mlp = layer.self_attn, layer.mlp
            mine["modules"] = {"qkv": [attn.q_proj, attn.k_proj, attn.v_proj], "o": [attn.o_proj],
                               "gate_up": [mlp.gate_proj, mlp.up_proj], "down": [mlp.down_proj]}

    def forward(self, input_ids: torch.Tensor, positions: torch.Tensor, plan: StepPlan, lora=None) -> torch.Tensor:
        """Hidden states [T, hidden] after the final norm; ``lora``: a :class:`MixedLoRA` applied to this
        step (or None: base model only)."""
        x = self.embed(input_ids)  # [T, hidden]
        cos, sin = self.rotary(x, positions.unsqueeze(0))  # [1, T, D], in x's dtype
        cos, sin = cos[0, :, None], sin[0, :, None]  # [T, 1, D]
        half = self.head_dim // 2
        sin = torch.cat((-sin[..., :half], sin[..., half:]), -1)  # rotate_half's sign, folded into sin
        attend = _Attention(plan, self.heads, self.kv_heads, self.head_dim, self.scaling)
        t, h, kvh, d = len(input_ids), self.heads, self.kv_heads, self.head_dim
        for index, layer in enumerate(self.layers):
            y = _rms_norm(x, layer["attn_norm"], layer["eps"])
            qkv = _project(y, layer, "qkv", lora).view(t, h + 2 * kvh, d)
            qk = qkv[:, :h + kvh]
            # rotate_half(x) * sin == roll(x, half) * [-sin, sin]: one roll instead of two slices, neg and cat
            qk = qk * cos + qk.roll(half, -1) * sin  # [T, H + Hkv, D]
            out = attend(index, qk[:, :h], torch.cat((qk[:, h:], qkv[:, h + kvh:]), 1))  # [T, H * D]
            x = x + _project(out, layer, "o", lora)
            y = _rms_norm(x, layer["mlp_norm"], layer["eps"])
            gate, up = _project(y, layer, "gate_up", lora).chunk(2, dim=-1)
            x = x + _project(torch.nn.functional.silu(gate) * up, layer, "down", lora)
        return _rms_norm(x, self.norm_weight, self.norm_eps)


    def logits(self, hidden: torch.Tensor) -> torch.Tensor:
        """[N, hidden] -> [N, vocab], in the model's dtype."""
        if self.head is None:
            return self.lm.get_output_embeddings()(hidden)
        return _linear(hidden, self.head, self.head_packed, self.head_int8)


def _rms_norm(x, weight, eps):
    """transformers' LlamaRMSNorm: in float32, the weight applied after casting back."""
    return weight * torch.nn.functional.rms_norm(x.float(), (x.shape[-1],), eps=eps).to(x.dtype)


def _linear(x, weight, packed, quantized):
    if quantized is not None and int8_weights.use_kernel(x):
        return int8_weights.linear(x, quantized)
    return linear(x, weight, packed)


def _project(x, layer, name, lora):
    out = _linear(x, layer[name], layer.get("packed", {}).get(name), layer.get("int8", {}).get(name))
    if lora is not None:
        out = lora.add_fused_delta(layer["modules"][name], x, out)
    return out


class _Attention:
    """Each request's queries over its own cached keys and values, grouped-query heads sharing their key
    head without copies. A step where every request feeds one token (decoding) skips the query gather."""

    def __init__(self, plan: StepPlan, heads: int, kv_heads: int, head_dim: int, scaling: float):
        self.plan, self.heads, self.kv_heads, self.head_dim, self.scaling = plan, heads, kv_heads, head_dim, scaling
        self.groups = heads // kv_heads
        s, lq = plan.query_index.shape
        self.decoding = lq == 1  # one query per segment, in token order
        # [S, 1, Lq, Lk] -> [S, 1, groups * Lq, Lk]: query rows are (group member, position) per key head
        self.mask = None if plan.unmasked else plan.mask.repeat(1, 1, self.groups, 1)
        # rows of the layer's flattened pool: where the new keys and values go ([2 * Hkv * T], in the order of
        # kv.transpose(0, 1)) and what each segment reads ([2, S, Hkv, Lk]: keys and values in attention's order)
        self.write_index = plan.pool.flat_index(plan.write_slots).reshape(-1)
        self.read_index = plan.pool.flat_index(plan.key_slots).reshape(-1)

    def __call__(self, layer: int, q, kv):
        """q [T, H, D], kv [T, 2 * Hkv, D] (keys rotated, then values) -> [T, H * D]."""
        plan, g, d, kvh = self.plan, self.groups, self.head_dim, self.kv_heads
        pool = plan.pool.kv[layer].view(-1, d)  # [2 * Hkv * capacity, D]
        pool.index_copy_(0, self.write_index, kv.transpose(0, 1).reshape(-1, d))
        s, lq = plan.query_index.shape
        lk = plan.key_slots.shape[1]
        ks, vs = pool.index_select(0, self.read_index).view(2, s, kvh, lk, d)  # each [S, Hkv, Lk, D]
        if self.decoding:
            qs = q.view(s, kvh, g, d)  # [S, Hkv, g, D]
        else:  # [T, H, D] -> [S, Lq, H, D] -> [S, Hkv, g * Lq, D]
            qs = q.index_select(0, plan.query_index.view(-1)).view(s, lq, kvh, g, d)
            qs = qs.permute(0, 2, 3, 1, 4).reshape(s, kvh, g * lq, d)
        scores = torch.matmul(qs, ks.transpose(-1, -2)).float() * self.scaling  # [S, Hkv, g * Lq, Lk]
        if self.mask is not None:
            scores = scores.masked_fill(~self.mask, float("-inf"))
        out = torch.matmul(torch.softmax(scores, dim=-1).to(vs.dtype), vs)  # [S, Hkv, g * Lq, D]
        if self.decoding:
            return out.reshape(s, self.heads * d)
        out = out.view(s, kvh, g, lq, d).permute(0, 3, 1, 2, 4).reshape(s * lq, self.heads * d)
        return out.index_select(0, plan.scatter_index)
