"""Model ids resolve to ready local folders: bundled GGUF, local folder, Hub cache."""

from __future__ import annotations

import json
import multiprocessing
import shutil
import time
from pathlib import Path

import pytest

from selftune.errors import SelftuneError
from selftune.models import context_length, list_models, load_tokenizer, resolve_model
from selftune.store.build_once import build_once


@pytest.mark.slow  # converts the bundled SmolLM2 (~20 s); the slow README flow and parity tests run on it too
def test_bundled_model_converts_once_and_answers(smollm2_home, monkeypatch):
    import torch
    from transformers import AutoModelForCausalLM

    monkeypatch.setenv("SELFTUNE_HOME", str(smollm2_home))
    folder = resolve_model("smollm2-135m-instruct")
    assert folder == smollm2_home / "models" / "smollm2-135m-instruct"
    names = {p.name for p in folder.iterdir()}
    assert {"config.json", "model.safetensors", "tokenizer.json", "selftune-source.json"} <= names
    assert not any(n.endswith((".bin", ".pt", ".gguf")) for n in names)
    config = json.loads((folder / "config.json").read_text())
    assert "quantization_config" not in config and config["model_type"] == "llama"
    assert context_length("smollm2-135m-instruct") == 8192

    tokenizer = load_tokenizer("smollm2-135m-instruct")
    assert tokenizer.eos_token == "<|im_end|>" and "<|im_start|>" in tokenizer.chat_template
    model = AutoModelForCausalLM.from_pretrained(folder)
    prompt = tokenizer.apply_chat_template([{"role": "user", "content": "What is the capital of France?"}],
                                           add_generation_prompt=True, return_tensors="pt", return_dict=True)
    with torch.no_grad():
        output = model.generate(**prompt, max_new_tokens=12, do_sample=False)
    answer = tokenizer.decode(output[0, prompt["input_ids"].shape[1]:], skip_special_tokens=True)
    assert "Paris" in answer  # the dequantized weights are the real model, not noise

    before = (folder / "model.safetensors").stat().st_mtime_ns
    assert resolve_model("smollm2-135m-instruct") == folder
    assert (folder / "model.safetensors").stat().st_mtime_ns == before  # not converted again


def test_local_folder(tiny_model):
    assert resolve_model(str(tiny_model)) == tiny_model
    assert context_length(str(tiny_model)) == 256


def test_local_folder_without_safetensors_is_refused(tiny_model, tmp_path):
    folder = tmp_path / "pickled"
    folder.mkdir()
    shutil.copy(tiny_model / "config.json", folder)
    (folder / "pytorch_model.bin").write_bytes(b"not really")
    with pytest.raises(SelftuneError, match="no .safetensors weights"):
        resolve_model(str(folder))


@pytest.mark.parametrize("model_id, message", [
    ("no-such-model", "unknown model 'no-such-model'"),
    ("", "no model given"),
])
def test_unknown_ids(model_id, message):
    with pytest.raises(SelftuneError, match=message):
        resolve_model(model_id)


def test_file_instead_of_folder(tmp_path):
    path = tmp_path / "model.gguf"
    path.write_bytes(b"")
    with pytest.raises(SelftuneError, match="is a file"):
        resolve_model(str(path))


def fake_hub_cache(cache: Path, repo_id: str, source: Path) -> None:
    """Lay out a Hugging Face cache entry the way huggingface_hub writes one."""
    repo = cache / f"models--{repo_id.replace('/', '--')}"
    commit = "0123456789abcdef0123456789abcdef01234567"
    snapshot = repo / "snapshots" / commit
    snapshot.mkdir(parents=True)
    for item in source.iterdir():
        shutil.copy(item, snapshot / item.name)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)


def test_hub_id_resolves_from_the_cache_offline(tiny_model, tmp_path, monkeypatch):
    import huggingface_hub.constants as hf_constants

    cache = tmp_path / "hf-cache"
    fake_hub_cache(cache, "acme/tiny-chat", tiny_model)
    monkeypatch.setattr(hf_constants, "HF_HUB_CACHE", str(cache))
    folder = resolve_model("acme/tiny-chat")
    assert folder.parent.parent.name == "models--acme--tiny-chat"
    assert (folder / "config.json").is_file()
    assert any(i.id == "acme/tiny-chat" and i.kind == "hub-cache" for i in list_models())


def test_hub_id_not_cached_offline_is_a_clear_error(tmp_path, monkeypatch):
    import huggingface_hub.constants as hf_constants

    monkeypatch.setattr(hf_constants, "HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    with pytest.raises(SelftuneError, match="not in the Hugging Face cache"):
        resolve_model("acme/absent-model")


@pytest.mark.slow  # converts the bundled SmolLM2 (~20 s); the slow README flow and parity tests run on it too
def test_list_models_shows_bundled_status(smollm2_home, monkeypatch):
    bundled = {i.id: i for i in list_models()}["smollm2-135m-instruct"]
    assert bundled.available and bundled.path is None  # installed, not yet converted in this home
    monkeypatch.setenv("SELFTUNE_HOME", str(smollm2_home))
    bundled = {i.id: i for i in list_models()}["smollm2-135m-instruct"]
    assert bundled.path == smollm2_home / "models" / "smollm2-135m-instruct"


def _slow_build(target: str, log: str) -> None:
    def build(tmp: Path) -> None:
        with open(log, "a") as f:
            f.write("built\n")
        time.sleep(1.0)
        (tmp / "weights").write_text("done")
    build_once(Path(target), build)


def test_build_once_builds_once_across_processes(tmp_path):
    target, log = tmp_path / "models" / "m", tmp_path / "log"
    ctx = multiprocessing.get_context("spawn")
    workers = [ctx.Process(target=_slow_build, args=(str(target), str(log))) for _ in range(3)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(60)
    assert [w.exitcode for w in workers] == [0, 0, 0]
    assert log.read_text() == "built\n"
    assert (target / "weights").read_text() == "done"
    assert [p.name for p in target.parent.iterdir() if p.name.startswith(".m.")] == []  # no temp dirs left


def test_build_once_leaves_nothing_behind_when_the_build_fails(tmp_path):
    target = tmp_path / "models" / "m"

    def broken(tmp: Path) -> None:
        (tmp / "half").write_text("x")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        build_once(target, broken)
    assert not target.exists()
    assert [p.name for p in target.parent.iterdir()] == [".locks"]
