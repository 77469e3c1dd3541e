"""Whole GGUFs of the tiny Llama read back as the same model, tokenizer metadata and template.

transformers reads GGUF files itself (undoing the Q/K permutation), an independent reader without llama.cpp.
Slow: each file carries SmolLM2's 49,152 tokens and 48,900 merges, which the gguf package's reader parses one
by one (tens of seconds on 2 busy cores).
"""

from __future__ import annotations

import json

import gguf
import numpy as np
import pytest
import torch

from selftune.export import llama
from selftune.export.to_gguf import export_gguf
from selftune.train import run
from tests.train.helpers import chat_rows, config

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def lora_run(tmp_path_factory, tiny_model):
    """A finished LoRA run on the tiny model whose adapter moved the weights noticeably."""
    tmp = tmp_path_factory.mktemp("lora-run")
    cfg = config(tmp, tiny_model, valid=False, learning_rate_multiplier=10.0)
    run(cfg)
    return cfg.out


def fields(path) -> dict:
    reader = gguf.GGUFReader(path)
    return {name: field.contents() for name, field in reader.fields.items() if not name.startswith("GGUF.")}


def tensors(path) -> dict:
    return {t.name: t for t in gguf.GGUFReader(path).tensors}


def test_a_merged_f32_gguf_reads_back_as_the_merged_model(tmp_path, lora_run):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from selftune.export.merged import merged_model
    from selftune.export.source import find_source

    result = export_gguf(str(lora_run), tmp_path / "gguf", "f32")
    assert sorted(p.name for p in result.out.iterdir()) == ["Modelfile", "README.md", "out.f32.gguf"]
    assert result.adapter is None

    reread = AutoModelForCausalLM.from_pretrained(result.out, gguf_file=result.model.name, dtype=torch.float32)
    merged = merged_model(find_source(str(lora_run)))
    tokenizer = AutoTokenizer.from_pretrained(lora_run)
    ids = torch.tensor([tokenizer.apply_chat_template(chat_rows(1)[0]["messages"], tokenize=True,
                                                      return_dict=False)])
    with torch.no_grad():
        assert torch.allclose(reread(ids).logits, merged(ids).logits, atol=1e-5)

    meta = fields(result.model)
    assert meta["general.architecture"] == "llama" and meta["general.type"] == "model"
    assert meta["tokenizer.chat_template"] == tokenizer.chat_template  # as training rendered it
    assert meta["tokenizer.ggml.pre"] == "gpt-2" and meta["tokenizer.ggml.model"] == "gpt2"
    assert meta["tokenizer.ggml.eos_token_id"] == meta["tokenizer.ggml.eot_token_id"] == tokenizer.convert_tokens_to_ids(
        "<|im_end|>")
    assert meta["tokenizer.ggml.add_bos_token"] is False
    assert meta["llama.context_length"] == merged.config.max_position_embeddings
    assert len(meta["tokenizer.ggml.tokens"]) == merged.config.vocab_size
    assert len(meta["tokenizer.ggml.merges"]) > 40_000
    assert "output.weight" not in tensors(result.model)  # tied: llama.cpp reuses token_embd


def test_q_and_k_rows_are_permuted_for_llama_cpp(tmp_path, tiny_model):
    """llama.cpp rotates interleaved pairs: per head, HF's rows [0, d/2) and [d/2, d) alternate."""
    from safetensors.torch import load_file
    from transformers import AutoConfig

    result = export_gguf(str(tiny_model), tmp_path / "gguf", "f32")
    cfg = AutoConfig.from_pretrained(tiny_model)
    hf = load_file(str(tiny_model / "model.safetensors"))
    written = tensors(result.model)
    d = llama.head_dim(cfg)
    q_hf = hf["model.layers.0.self_attn.q_proj.weight"].numpy()
    q_gguf = np.asarray(written["blk.0.attn_q.weight"].data)
    assert np.array_equal(q_gguf[1], q_hf[d // 2])  # row 1 of head 0 is HF's row d/2
    assert np.array_equal(q_gguf[d + 2], q_hf[d + 1])  # row 2 of head 1 is HF's row 1 of that head
    k_hf = hf["model.layers.1.self_attn.k_proj.weight"].numpy()
    assert np.array_equal(np.asarray(written["blk.1.attn_k.weight"].data), llama.permute_rows(k_hf, cfg.num_key_value_heads))
    v_hf = hf["model.layers.1.self_attn.v_proj.weight"].numpy()
    assert np.array_equal(np.asarray(written["blk.1.attn_v.weight"].data), v_hf)


def test_adapter_only_writes_a_lora_gguf_beside_its_base(tmp_path, lora_run, tiny_model):
    from safetensors.torch import load_file

    result = export_gguf(str(lora_run), tmp_path / "pair", "f16", adapter_only=True)
    assert result.adapter is not None and result.model.parent == result.adapter.parent
    meta = fields(result.adapter)
    adapter_config = json.loads((lora_run / "adapter_config.json").read_text())
    assert meta["general.type"] == "adapter" and meta["adapter.type"] == "lora"
    assert meta["adapter.lora.alpha"] == pytest.approx(adapter_config["lora_alpha"])
    written = tensors(result.adapter)
    peft = load_file(str(lora_run / "adapter_model.safetensors"))
    b_q = peft["base_model.model.model.layers.0.self_attn.q_proj.lora_B.weight"].float().numpy()
    assert np.allclose(np.asarray(written["blk.0.attn_q.weight.lora_b"].data, dtype=np.float32),
                       llama.permute_rows(b_q, 4), atol=1e-3)
    a_q = peft["base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight"].float().numpy()
    assert np.allclose(np.asarray(written["blk.0.attn_q.weight.lora_a"].data, dtype=np.float32), a_q, atol=1e-3)
    assert {name.rsplit(".", 2)[0].split(".", 2)[2] for name in written} <= {
        "attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up", "ffn_down"}
    base = fields(result.model)
    assert base["general.type"] == "model" and base["general.file_type"] == gguf.LlamaFileType.MOSTLY_F16
    modelfile = (result.out / "Modelfile").read_text()
    assert f"FROM ./{result.model.name}\nADAPTER ./{result.adapter.name}\n" in modelfile


@pytest.mark.parametrize(("type_", "expected"), [("q8_0", gguf.GGMLQuantizationType.Q8_0),
                                                 ("bf16", gguf.GGMLQuantizationType.BF16)])
def test_types(tmp_path, tiny_model, type_, expected):
    result = export_gguf(str(tiny_model), tmp_path / "gguf", type_)
    written = tensors(result.model)
    assert written["blk.0.ffn_up.weight"].tensor_type == expected
    assert written["blk.0.attn_norm.weight"].tensor_type == gguf.GGMLQuantizationType.F32  # norms stay f32
