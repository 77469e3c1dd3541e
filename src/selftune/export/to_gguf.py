"""``selftune export --format gguf``: a merged GGUF, or a LoRA adapter GGUF beside its base GGUF, for llama.cpp
and Ollama, with a Modelfile and a README.

Both GGUFs of the adapter pair are written from the weights selftune serves (the bundled model's dequantized
fp32 safetensors), never taken from the bundled Q4_1 file: only then do llama.cpp's answers match selftune's.
Everything that could be refused (architecture, tokenizer, adapter kind) is checked before a byte is written,
and the folder appears whole or not at all.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import gguf
import numpy as np

from selftune.errors import SelftuneError
from selftune.export import llama
from selftune.export.ollama import write_modelfile, write_readme
from selftune.export.source import ExportSource, base_folder, find_source
from selftune.export.types import GGUF_TYPES
from selftune.export.vocab import add_tokenizer
from selftune.models.adapter import ADAPTER_CONFIG
from selftune.store.atomic import atomic_directory

Q = gguf.GGMLQuantizationType
# --type -> (tensor type of 2-D weights, llama.cpp file type); 1-D tensors (norms) always stay f32
TYPES = {
    "f32": (Q.F32, gguf.LlamaFileType.ALL_F32),
    "f16": (Q.F16, gguf.LlamaFileType.MOSTLY_F16),
    "bf16": (Q.BF16, gguf.LlamaFileType.MOSTLY_BF16),
    "q8_0": (Q.Q8_0, gguf.LlamaFileType.MOSTLY_Q8_0),
}
assert tuple(TYPES) == GGUF_TYPES
LORA = ".lora_"  # PEFT: ...q_proj.lora_A.weight / ...q_proj.lora_B.weight


@dataclass(frozen=True)
class GgufExport:
    out: Path
    model: Path  # the merged GGUF, or the base GGUF of an adapter pair
    adapter: Path | None


def export_gguf(model_or_run: str, out: Path, type_: str = "f16", adapter_only: bool = False) -> GgufExport:
    if type_ not in TYPES:
        raise SelftuneError(f"unknown GGUF type {type_!r}; choose one of {', '.join(TYPES)}")
    out = Path(out)
    if out.exists():
        raise SelftuneError(f"{out} already exists; choose a new folder")
    source = find_source(model_or_run)
    if adapter_only and source.adapter is None:
        raise SelftuneError(f"{model_or_run} has no LoRA adapter (a full fine-tune or a base model): "
                            "export it without --adapter-only")
    from transformers import AutoConfig, AutoTokenizer

    base_dir = base_folder(source.base) if source.weights is None else source.weights
    config = AutoConfig.from_pretrained(base_dir)
    llama.check_supported(config)
    tokenizer = AutoTokenizer.from_pretrained(source.tokenizer_folder())
    lora = adapter_tensors(source, config) if adapter_only else None  # refused here, before writing

    stem = file_stem(source.name)
    base_stem = file_stem(source.base) if adapter_only else stem
    model_file = f"{base_stem}.{type_}.gguf"
    adapter_file = f"{stem}.lora.{type_}.gguf" if adapter_only else None
    with atomic_directory(out) as tmp:
        if adapter_only:
            write_model(tmp / model_file, _plain(ExportSource(source.base, source.base, None, None, None)),
                        config, tokenizer, source.tokenizer_folder(), type_, source.base)
            write_adapter(tmp / adapter_file, lora, config, type_, source.name)
        else:
            write_model(tmp / model_file, _plain(source), config, tokenizer, source.tokenizer_folder(), type_,
                        source.name)
        write_modelfile(tmp / "Modelfile", model_file, adapter_file, tokenizer)
        write_readme(tmp / "README.md", source.name, model_file, adapter_file, type_)
    return GgufExport(out, out / model_file, out / adapter_file if adapter_file else None)


def file_stem(name: str) -> str:
    """A file name from a run folder, a model id or ``ft:...`` id: its last path part, ``:`` -> ``-``."""
    stem = re.sub(r"[^A-Za-z0-9._-]+", "-", Path(name.rstrip("/")).name if "/" in name else name).strip("-.")
    return stem or "model"


def _plain(source: ExportSource) -> dict:
    """The fp32 state dict of the (merged) model."""
    from selftune.export.merged import merged_model

    return merged_model(source).state_dict()


def write_model(path: Path, state: dict, config, tokenizer, tokenizer_dir: Path, type_: str, name: str) -> None:
    qtype, file_type = TYPES[type_]
    writer = gguf.GGUFWriter(path, gguf.MODEL_ARCH_NAMES[gguf.MODEL_ARCH.LLAMA])
    writer.add_type(gguf.GGUFType.MODEL)
    writer.add_name(name)
    llama.add_hyperparameters(writer, config)
    writer.add_file_type(file_type)
    writer.add_quantization_version(gguf.GGML_QUANT_VERSION)
    add_tokenizer(writer, tokenizer, tokenizer_dir, config.vocab_size)
    names = gguf.get_tensor_name_map(gguf.MODEL_ARCH.LLAMA, config.num_hidden_layers)
    for hf_name, tensor in state.items():
        if hf_name == "lm_head.weight" and config.tie_word_embeddings:
            continue  # llama.cpp reuses token_embd when output.weight is absent
        data = tensor.float().numpy()
        heads = llama.heads_to_permute(config, hf_name)
        if heads:
            data = llama.permute_rows(data, heads)
        _add(writer, llama.gguf_name(names, hf_name), data, qtype)
    _finish(writer)


def adapter_tensors(source: ExportSource, config) -> dict:
    """The adapter's tensors under llama.cpp's names (``blk.N.attn_q.weight.lora_a``), B rows of Q/K permuted,
    and its alpha; every adapter llama.cpp would apply differently from PEFT is refused."""
    from safetensors.torch import load_file

    folder = source.adapter
    settings = json.loads((folder / ADAPTER_CONFIG).read_text())
    problems = {
        "peft_type is not LORA": settings.get("peft_type", "LORA") != "LORA",
        "DoRA (use_dora)": bool(settings.get("use_dora")),
        "modules_to_save (fully trained extra layers)": bool(settings.get("modules_to_save")),
        "per-layer ranks or alphas (rank_pattern/alpha_pattern)": bool(settings.get("rank_pattern")
                                                                       or settings.get("alpha_pattern")),
        "LoRA biases (lora_bias)": bool(settings.get("lora_bias")),
    }
    named = [name for name, bad in problems.items() if bad]
    if named:
        raise SelftuneError(f"llama.cpp can't apply this adapter as PEFT does: {', '.join(named)}; "
                            "export it merged instead (without --adapter-only)")
    rank = int(settings["r"])
    # llama.cpp scales by alpha / rank; PEFT by lora_alpha / r (or / sqrt(r) with rsLoRA): same product
    scaling = settings["lora_alpha"] / (rank ** 0.5 if settings.get("use_rslora") else rank)
    weights = load_file(str(folder / "adapter_model.safetensors"))
    names = gguf.get_tensor_name_map(gguf.MODEL_ARCH.LLAMA, config.num_hidden_layers)
    tensors = {}
    for key, tensor in weights.items():
        hf_key = key.removeprefix("base_model.model.")
        module, sep, part = hf_key.partition(LORA)
        if not sep or part not in ("A.weight", "B.weight") or module.rsplit(".", 1)[-1] not in llama.LORA_MODULES:
            raise SelftuneError(f"{folder / 'adapter_model.safetensors'}: tensor {key!r} is not a LoRA A/B "
                                f"matrix of a layer llama.cpp adapts ({', '.join(llama.LORA_MODULES)})")
        hf_name = module + ".weight"
        data = tensor.float().numpy()  # A: [r, in], B: [out, r]
        heads = llama.heads_to_permute(config, hf_name)
        if part == "B.weight" and heads:
            data = llama.permute_rows(data, heads)
        tensors[f"{llama.gguf_name(names, hf_name)}.lora_{part[0].lower()}"] = data
    return {"alpha": scaling * rank, "tensors": tensors}


def write_adapter(path: Path, lora: dict, config, type_: str, name: str) -> None:
    """LoRA tensors are small: q8_0 keeps them f16 (B's rank-wide rows are too short for 32-value blocks)."""
    qtype = Q.F16 if type_ == "q8_0" else TYPES[type_][0]
    writer = gguf.GGUFWriter(path, gguf.MODEL_ARCH_NAMES[gguf.MODEL_ARCH.LLAMA])
    writer.add_type(gguf.GGUFType.ADAPTER)
    writer.add_name(name)
    writer.add_string(gguf.Keys.Adapter.TYPE, "lora")
    writer.add_float32(gguf.Keys.Adapter.LORA_ALPHA, float(lora["alpha"]))
    writer.add_file_type(TYPES["f16" if type_ == "q8_0" else type_][1])
    writer.add_quantization_version(gguf.GGML_QUANT_VERSION)
    for tensor_name, data in lora["tensors"].items():
        _add(writer, tensor_name, data, qtype)
    _finish(writer)


def _add(writer, name: str, data: np.ndarray, qtype) -> None:
    if data.ndim == 1:
        qtype = Q.F32
    elif qtype == Q.Q8_0 and data.shape[-1] % gguf.GGML_QUANT_SIZES[Q.Q8_0][0]:
        qtype = Q.F16  # rows not a whole number of 32-value blocks, as llama.cpp's converter does
    packed = gguf.quants.quantize(data, qtype)
    writer.add_tensor(name, packed, raw_dtype=qtype if qtype in (Q.Q8_0, Q.BF16) else None)


def _finish(writer) -> None:
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
