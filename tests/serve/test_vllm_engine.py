"""The vLLM engine, where vLLM and a CUDA GPU are present (skipped elsewhere, CI included)."""

from __future__ import annotations

import json

import pytest
import torch

from selftune.models.chat_template import render_prompt
from selftune.serve.engine import GenerationRequest, SamplingParams, ServedModel
from selftune.serve.vllm_engine import vllm_usable

pytestmark = pytest.mark.skipif(not vllm_usable(), reason="needs vLLM and a CUDA GPU")
MODEL = "smollm2-135m-instruct"


@pytest.fixture(scope="module")
def served(smollm2_home, tmp_path_factory):
    """A vLLM engine on the bundled SmolLM2, and two random LoRA adapters for it."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from selftune.models import resolve_model
    from selftune.serve.vllm_engine import VLLMEngine

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SELFTUNE_HOME", str(smollm2_home))
        folder = resolve_model(MODEL)
        adapters = []
        for seed in (1, 2):
            torch.manual_seed(seed)
            lora = get_peft_model(AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32),
                                  LoraConfig(r=8, lora_alpha=64, target_modules="all-linear",
                                             init_lora_weights=False))
            adapters.append(tmp_path_factory.mktemp(f"vllm-adapter{seed}"))
            lora.save_pretrained(adapters[-1])
        engine = VLLMEngine(kv_tokens=8192, gpu_memory_utilization=0.3)
        yield engine, adapters
        engine.close()


def prompt(engine, text: str) -> list[int]:
    return render_prompt(engine.tokenizer(ServedModel(MODEL, MODEL)), [{"role": "user", "content": text}])


def test_adapters_in_one_batch_answer_differently_from_the_base(served, generate):
    engine, adapters = served
    models = [ServedModel(MODEL, MODEL), ServedModel("a1", MODEL, adapters[0]), ServedModel("a2", MODEL, adapters[1])]
    ids = prompt(engine, "Where is my new card?")
    answers = generate(engine, [GenerationRequest(m, ids, SamplingParams(max_tokens=16, temperature=0))
                                for m in models])
    tokens = [tuple(t) for t, _ in answers]
    assert len(set(tokens)) == 3, tokens
    for t, finished in answers:
        assert finished.reason in ("stop", "length") and finished.completion_tokens >= len(t)
        assert finished.prompt_tokens == len(ids)


def test_seed_and_grammar(served, generate):
    from selftune.serve.constraints import json_grammar

    engine, _ = served
    ids = prompt(engine, "Give me a JSON ticket")
    seeded = SamplingParams(max_tokens=16, temperature=1.0, seed=5)
    first, second = generate(engine, [GenerationRequest(ServedModel(MODEL, MODEL), ids, seeded)] * 2)
    assert first[0] == second[0]
    schema = {"type": "object", "properties": {"priority": {"type": "integer", "minimum": 1, "maximum": 5}},
              "required": ["priority"], "additionalProperties": False}
    params = SamplingParams(max_tokens=32, temperature=1.0, grammar=json_grammar([("", schema, "")]))
    ((_, finished),) = generate(engine, [GenerationRequest(ServedModel(MODEL, MODEL), ids, params)])
    assert 1 <= json.loads(finished.text)["priority"] <= 5
