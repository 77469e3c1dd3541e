"""The Llama family (SmolLM2 is one) as llama.cpp reads it: hyperparameters, tensor names, Q/K row order.

llama.cpp's own HF converter (convert_hf_to_gguf.py) is not packaged, so the part selftune's base models
need is written here, after it: the ``gguf`` package supplies the key names and the HF -> GGUF tensor name
map; what it lacks is which config fields to check and the Q/K permutation. Anything this module does not
know how to write is refused before a byte is written, naming what is supported.
"""

from __future__ import annotations

import numpy as np

from selftune.errors import SelftuneError

SUPPORTED = "Llama-architecture models (LlamaForCausalLM: SmolLM2, TinyLlama, Llama 2/3 shapes)"
# Llama layers that llama.cpp applies a LoRA adapter to (PEFT module name -> llama.cpp applies it)
LORA_MODULES = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


def check_supported(config) -> None:
    """Refuse, with the reason, any model whose GGUF llama.cpp would load as something else."""
    architectures = getattr(config, "architectures", None) or []
    if getattr(config, "model_type", None) != "llama" or architectures not in ([], ["LlamaForCausalLM"]):
        raise SelftuneError(f"GGUF export supports {SUPPORTED}; this model is {config.model_type!r} "
                            f"({', '.join(architectures) or 'no architectures field'})")
    unsupported = {
        "attention_bias": bool(getattr(config, "attention_bias", False)),
        "mlp_bias": bool(getattr(config, "mlp_bias", False)),
        "rope scaling": _rope(config).get("rope_type", "default") != "default",
        "hidden_act": getattr(config, "hidden_act", "silu") != "silu",
        "pretraining_tp": getattr(config, "pretraining_tp", 1) != 1,
    }
    named = [name for name, bad in unsupported.items() if bad]
    if named:
        raise SelftuneError(f"GGUF export of Llama models supports plain RoPE, SiLU and no biases; this model has "
                            f"{', '.join(named)}, which selftune's Llama mapping does not write")


def _rope(config) -> dict:
    return dict(getattr(config, "rope_parameters", None) or getattr(config, "rope_scaling", None) or {})


def rope_theta(config) -> float:
    return float(_rope(config).get("rope_theta") or getattr(config, "rope_theta", None) or 10000.0)


def head_dim(config) -> int:
    return getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads


def add_hyperparameters(writer, config) -> None:
    writer.add_context_length(config.max_position_embeddings)
    writer.add_embedding_length(config.hidden_size)
    writer.add_block_count(config.num_hidden_layers)
    writer.add_feed_forward_length(config.intermediate_size)
    writer.add_head_count(config.num_attention_heads)
    writer.add_head_count_kv(config.num_key_value_heads)
    writer.add_rope_dimension_count(head_dim(config))
    writer.add_rope_freq_base(rope_theta(config))
    writer.add_layer_norm_rms_eps(config.rms_norm_eps)
    writer.add_vocab_size(config.vocab_size)
    if head_dim(config) != config.hidden_size // config.num_attention_heads:
        writer.add_key_length(head_dim(config))
        writer.add_value_length(head_dim(config))


def gguf_name(name_map, hf_name: str) -> str:
    """``model.layers.3.self_attn.q_proj.weight`` -> ``blk.3.attn_q.weight``, by the gguf package's map."""
    name = name_map.get_name(hf_name, try_suffixes=(".weight", ".bias"))
    if name is None:
        raise SelftuneError(f"GGUF export: no llama.cpp tensor for {hf_name!r} ({SUPPORTED} only)")
    return name


def permute_rows(weights: np.ndarray, n_head: int) -> np.ndarray:
    """Reorder the output rows of a Q or K projection from HF's rotate-half RoPE layout to the interleaved
    pairs llama.cpp rotates: per head, rows [0..d/2) and [d/2..d) are interleaved. (convert_hf_to_gguf's
    ``LlamaModel.permute``.) For a LoRA adapter only B, which makes the rows, is permuted."""
    # [out, in] -> [heads, 2, d/2, in] -> [heads, d/2, 2, in] -> [out, in]
    return (weights.reshape(n_head, 2, weights.shape[0] // n_head // 2, *weights.shape[1:])
            .swapaxes(1, 2).reshape(weights.shape))


def heads_to_permute(config, hf_name: str) -> int | None:
    """How many heads a tensor's rows are permuted by: Q by the query heads, K by the key/value heads."""
    if hf_name.endswith("q_proj.weight"):
        return config.num_attention_heads
    if hf_name.endswith("k_proj.weight"):
        return config.num_key_value_heads
    return None
