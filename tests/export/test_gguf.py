"""GGUF export, the quick parts: the Q/K row order llama.cpp rotates, what is refused before a byte is written,
the Ollama Modelfile, and finding a fine-tuned model of the store by its id.

Writing and reading back whole GGUFs (49,152 tokens, ~10 s each on 2 cores) is in test_gguf_files.py, and
llama.cpp's own reading in test_llama_cpp.py, both slow.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from selftune.errors import SelftuneError
from selftune.export import llama
from selftune.export.source import find_source
from selftune.export.to_gguf import export_gguf, file_stem
from selftune.export.vocab import pre_tokenizer


def test_q_and_k_rows_are_interleaved_per_head_as_llama_cpp_rotates_them():
    """HF rotates the two halves of a head ([x0..x3 | y0..y3]); llama.cpp adjacent pairs (x0 y0 x1 y1 ...)."""
    rows = np.arange(2 * 8)[:, None] * np.ones((1, 3))  # 2 heads of dimension 8, 3 inputs
    permuted = llama.permute_rows(rows, n_head=2)[:, 0].astype(int).tolist()
    assert permuted == [0, 4, 1, 5, 2, 6, 3, 7, 8, 12, 9, 13, 10, 14, 11, 15]


def test_other_architectures_and_settings_are_refused_naming_what_is_supported():
    from transformers import GPT2Config, LlamaConfig

    with pytest.raises(SelftuneError, match=r"supports Llama-architecture models .*'gpt2'"):
        llama.check_supported(GPT2Config(architectures=["GPT2LMHeadModel"]))
    with pytest.raises(SelftuneError, match="attention_bias, rope scaling"):
        llama.check_supported(LlamaConfig(attention_bias=True, rope_parameters={"rope_type": "linear", "factor": 2.0,
                                                                                "rope_theta": 1e4}))
    llama.check_supported(LlamaConfig(architectures=["LlamaForCausalLM"]))


def test_a_tokenizer_llama_cpp_would_cut_differently_is_refused():
    """The original SmolLM2 tokenizer splits digits first; selftune's (converted from the GGUF) does not."""
    byte_level = {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True}
    assert pre_tokenizer({"normalizer": None, "pre_tokenizer": byte_level}) == "gpt-2"
    split_digits = {"normalizer": None, "pre_tokenizer": {"type": "Sequence", "pretokenizers": [
        {"type": "Digits", "individual_digits": True}, byte_level]}}
    with pytest.raises(SelftuneError, match="no llama.cpp pre-tokenizer known"):
        pre_tokenizer(split_digits)


def adapter_folder(tmp_path, tiny_model, tokenizer_dir, **settings):
    """A checkpoint-shaped LoRA folder (its weights are never read: refusals come first)."""
    folder = tmp_path / "run" / "checkpoints" / "step-4"
    folder.mkdir(parents=True)
    (folder / "adapter_config.json").write_text(json.dumps({
        "peft_type": "LORA", "r": 4, "lora_alpha": 8, "base_model_name_or_path": str(tiny_model), **settings}))
    return folder


@pytest.mark.parametrize(("settings", "named"), [({"use_dora": True}, r"DoRA \(use_dora\)"),
                                                 ({"modules_to_save": ["lm_head"]}, "modules_to_save"),
                                                 ({"rank_pattern": {"q_proj": 8}}, "rank_pattern")])
def test_an_adapter_llama_cpp_cannot_apply_is_refused_before_writing(tmp_path, tiny_model, tokenizer_dir, settings,
                                                                     named):
    folder = adapter_folder(tmp_path, tiny_model, tokenizer_dir, **settings)
    with pytest.raises(SelftuneError, match=f"{named}.*export it merged instead"):
        export_gguf(str(folder), tmp_path / "out", adapter_only=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]  # no folder, no temporary left behind


def test_what_cannot_be_exported_is_said_plainly(tmp_path, tiny_model):
    with pytest.raises(SelftuneError, match="already exists"):
        export_gguf(str(tiny_model), tmp_path)
    with pytest.raises(SelftuneError, match="has no LoRA adapter"):
        export_gguf(str(tiny_model), tmp_path / "out", adapter_only=True)
    with pytest.raises(SelftuneError, match="unknown GGUF type 'q4_0'"):
        export_gguf(str(tiny_model), tmp_path / "out", "q4_0")
    with pytest.raises(SelftuneError, match="not a finished selftune run"):
        export_gguf(str(tmp_path), tmp_path / "out")
    with pytest.raises(SelftuneError, match=r"not a run folder, a fine-tuned model id \(ft:...\)"):
        export_gguf("no-such-model", tmp_path / "out")
    assert file_stem("ft:smollm2-135m-instruct:org:bank:ftjob-1") == "ft-smollm2-135m-instruct-org-bank-ftjob-1"


def test_the_modelfile_speaks_chatml_with_the_templates_default_system_prompt(tmp_path, tokenizer_dir):
    from transformers import AutoTokenizer

    from selftune.export.ollama import write_modelfile

    write_modelfile(tmp_path / "Modelfile", "base.f16.gguf", "ft.lora.f16.gguf", AutoTokenizer.from_pretrained(
        tokenizer_dir))
    assert (tmp_path / "Modelfile").read_text() == (
        "FROM ./base.f16.gguf\nADAPTER ./ft.lora.f16.gguf\n"
        'TEMPLATE """{{- if not (and .Messages (eq (index .Messages 0).Role "system")) }}<|im_start|>system\n'
        "You are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n"
        "{{ end }}{{- range .Messages }}<|im_start|>{{ .Role }}\n{{ .Content }}<|im_end|>\n{{ end }}"
        '<|im_start|>assistant\n"""\n'
        'PARAMETER stop "<|im_end|>"\nPARAMETER stop "<|im_start|>"\n')


def test_a_fine_tuned_model_and_its_checkpoint_are_found_in_the_store_by_id(tmp_path, tiny_model, tokenizer_dir):
    """The command line reads the store (whichever organisation owns the model) and never moves the weights."""
    from selftune.config import get_settings
    from selftune.store.db import Database
    from selftune.store.tables import CheckpointRow, JobRow, ModelRow

    checkpoint = adapter_folder(tmp_path, tiny_model, tokenizer_dir)  # run/checkpoints/step-4
    run_dir = checkpoint.parent.parent
    (run_dir / "adapter_config.json").write_text((checkpoint / "adapter_config.json").read_text())
    (run_dir / "tokenizer_config.json").write_text("{}")
    model_id = "ft:tiny:org-a:bank:ftjob-1"
    db = Database(get_settings().database)
    with db.transaction() as session:
        session.add(JobRow(id="ftjob-1", org="org-a", model="tiny-base", training_file="file-1", method="supervised",
                           hyperparameters={}, seed=0, status="succeeded", fine_tuned_model=model_id))
        session.flush()  # the job before the rows that refer to it
        session.add(ModelRow(id=model_id, org="org-a", job_id="ftjob-1", base_model="tiny-base", path=str(run_dir)))
        session.add(CheckpointRow(id="ftckpt-1", job_id="ftjob-1", org="org-a", step_number=4, metrics={},
                                  model=f"{model_id}:ckpt-step-4", path=str(checkpoint)))
    db.dispose()

    model = find_source(model_id)
    assert (model.base, model.adapter, model.weights, model.tokenizer) == ("tiny-base", run_dir, None, run_dir)
    step = find_source(f"{model_id}:ckpt-step-4")
    assert (step.base, step.adapter, step.tokenizer) == ("tiny-base", checkpoint, run_dir)
    with pytest.raises(SelftuneError, match="no fine-tuned model 'ft:tiny:org-a:bank:ftjob-2'"):
        find_source("ft:tiny:org-a:bank:ftjob-2")


def test_the_command_line_refuses_with_one_line_and_exit_2(tmp_path, tiny_model):
    import os
    import subprocess
    import sys
    from pathlib import Path

    selftune = Path(sys.executable).parent / "selftune"
    result = subprocess.run([str(selftune), "export", str(tiny_model), "--format", "gguf", "--adapter-only",
                             "--out", "gguf"], capture_output=True, text=True, cwd=tmp_path, env=dict(os.environ),
                            timeout=300)
    assert (result.returncode, result.stdout) == (2, "")
    assert result.stderr == (f"error: {tiny_model} has no LoRA adapter (a full fine-tune or a base model): export it "
                             "without --adapter-only\n")
    assert not (tmp_path / "gguf").exists()
