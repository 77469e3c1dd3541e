"""The embedded engine against plain transformers + PEFT: same greedy tokens, adapters mixed in a batch."""

from __future__ import annotations

import pytest
import torch

from selftune.models.chat_template import render_prompt
from selftune.serve.engine import GenerationRequest, SamplingParams, ServedModel


@pytest.fixture(scope="module")
def adapters(tiny_model, tmp_path_factory):
    """Two random LoRA adapters (B not zero, so each changes the model's answers); the second on the top layer
    only (``selftune train --lora-layers 1``), so every layer of a batch mixes present and absent adapters."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    folders = []
    for seed in (1, 2):
        torch.manual_seed(seed)
        base = AutoModelForCausalLM.from_pretrained(tiny_model, dtype=torch.float32)
        placement = {"target_modules": "all-linear"} if seed == 1 else {
            "target_modules": ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
            "layers_to_transform": [1], "layers_pattern": "layers"}
        model = get_peft_model(base, LoraConfig(r=8, lora_alpha=64, init_lora_weights=False, **placement))
        folder = tmp_path_factory.mktemp(f"adapter{seed}")
        model.save_pretrained(folder)
        folders.append(folder)
    return folders


@pytest.fixture(scope="module")
def engine():
    from selftune.serve.embedded import EmbeddedEngine

    engine = EmbeddedEngine(dtype="fp32", kv_tokens=4096, step_tokens=64, threads=1)
    yield engine
    engine.close()


def reference(tiny_model, adapter, prompt: list[int], max_new_tokens: int) -> list[int]:
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(tiny_model, dtype=torch.float32)
    if adapter is not None:
        model = PeftModel.from_pretrained(model, adapter)
    out = model.generate(torch.tensor([prompt]), max_new_tokens=max_new_tokens, do_sample=False,
                         attention_mask=torch.ones(1, len(prompt), dtype=torch.long))
    return out[0, len(prompt):].tolist()


def test_greedy_answers_match_transformers_and_peft_with_adapters_mixed(engine, tiny_model, adapters, generate):
    tokenizer = engine.tokenizer(ServedModel("tiny", str(tiny_model)))
    prompts = [render_prompt(tokenizer, [{"role": "user", "content": text}])
               for text in ("Where is my card?", "How do I top up my account with a card?", "Hi")]
    models = [ServedModel("tiny", str(tiny_model)), ServedModel("a1", str(tiny_model), adapters[0]),
              ServedModel("a2", str(tiny_model), adapters[1])]
    cases = [(m, p) for m in models for p in prompts]
    params = SamplingParams(max_tokens=12, temperature=0.0)
    answers = generate(engine, [GenerationRequest(m, p, params) for m, p in cases])
    for (model, prompt), (tokens, finished) in zip(cases, answers, strict=True):
        expected = reference(tiny_model, model.adapter, prompt, 12)
        assert tokens[: len(expected)] == expected[: len(tokens)] and len(tokens) == len(expected), model.id
        assert finished.prompt_tokens == len(prompt) and finished.completion_tokens == len(tokens)
    by_model = [tuple(tokens) for tokens, _ in answers]
    assert max(len(set(t)) for t in by_model[3:]) >= 4, by_model  # the adapters' answers are not degenerate
    assert by_model[0:3] != by_model[3:6] != by_model[6:9]  # each adapter answers differently


def test_seed_reproduces_a_sampled_answer_whatever_the_batch(engine, tiny_model, generate):
    model = ServedModel("tiny", str(tiny_model))
    tokenizer = engine.tokenizer(model)
    prompt = render_prompt(tokenizer, [{"role": "user", "content": "Tell me a story"}])
    seeded = SamplingParams(max_tokens=16, temperature=1.0, seed=42)
    alone = generate(engine, [GenerationRequest(model, prompt, seeded)])[0][0]
    crowded = generate(engine, [GenerationRequest(model, prompt, SamplingParams(max_tokens=16, seed=i))
                                for i in range(5)] + [GenerationRequest(model, prompt, seeded)])
    assert crowded[-1][0] == alone
    assert len({tuple(t) for t, _ in crowded}) > 1


def test_max_tokens_and_stop_sequences(engine, tiny_model, generate):
    model = ServedModel("tiny", str(tiny_model))
    prompt = render_prompt(engine.tokenizer(model), [{"role": "user", "content": "Count"}])
    (tokens, finished), = generate(engine, [GenerationRequest(model, prompt, SamplingParams(max_tokens=5,
                                                                                            temperature=0.0))])
    assert finished.reason in ("length", "stop") and finished.completion_tokens <= 5
    if finished.reason == "length":
        assert len(tokens) == 5
    stop = finished.text[2:4] if len(finished.text) >= 4 else None
    if stop:
        (_, stopped), = generate(engine, [GenerationRequest(model, prompt, SamplingParams(
            max_tokens=5, temperature=0.0, stop=[stop]))])
        assert stopped.reason == "stop" and stopped.text == finished.text[: finished.text.find(stop)]


@pytest.mark.slow
def test_parity_on_the_bundled_model(smollm2_home, monkeypatch, tmp_path, generate):
    """SmolLM2-135M with a LoRA adapter, in fp32: the engine's greedy answers, several requests batched
    together, equal transformers + PEFT ``generate`` token for token (bf16 rounding may flip near-ties,
    in either implementation)."""
    from peft import LoraConfig, PeftModel, get_peft_model
    from transformers import AutoModelForCausalLM

    from selftune.models import resolve_model
    from selftune.serve.embedded import EmbeddedEngine

    monkeypatch.setenv("SELFTUNE_HOME", str(smollm2_home))
    folder = resolve_model("smollm2-135m-instruct")
    torch.manual_seed(0)
    lora = get_peft_model(AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32),
                          LoraConfig(r=8, lora_alpha=16, target_modules="all-linear", init_lora_weights=False))
    lora.save_pretrained(tmp_path / "adapter")
    engine = EmbeddedEngine(dtype="fp32", kv_tokens=8192)
    try:
        models = [ServedModel("base", "smollm2-135m-instruct"),
                  ServedModel("lora", "smollm2-135m-instruct", tmp_path / "adapter")]
        tokenizer = engine.tokenizer(models[0])
        prompts = [render_prompt(tokenizer, [{"role": "user", "content": q}])
                   for q in ("What is the capital of France?", "How do I reset my card PIN?")]
        cases = [(m, p) for m in models for p in prompts]
        answers = generate(engine, [GenerationRequest(m, p, SamplingParams(max_tokens=32, temperature=0.0))
                                    for m, p in cases])
    finally:
        engine.close()
    for (model, prompt), (tokens, finished) in zip(cases, answers, strict=True):
        reference_model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32)
        if model.adapter:
            reference_model = PeftModel.from_pretrained(reference_model, model.adapter)
        expected = reference_model.generate(torch.tensor([prompt]), max_new_tokens=32, do_sample=False,
                                            attention_mask=torch.ones(1, len(prompt), dtype=torch.long))
        expected = expected[0, len(prompt):].tolist()
        if finished.reason == "stop":
            expected = expected[:-1]  # the end-of-turn token is not part of the text
        assert tokens == expected, (model.id, tokenizer.decode(tokens), tokenizer.decode(expected))


def test_a_repeated_prompt_prefix_is_served_from_the_cache(engine, tiny_model, adapters, generate):
    from selftune.serve.kv_pool import PAGE, KVPool

    for model in (ServedModel("tiny", str(tiny_model)), ServedModel("a1", str(tiny_model), adapters[0])):
        tokenizer = engine.tokenizer(model)
        system = {"role": "system", "content": "You answer banking questions briefly and politely. " * 4}
        prompts = [render_prompt(tokenizer, [system, {"role": "user", "content": q}]) for q in ("Card?", "Fees?")]
        params = SamplingParams(max_tokens=6, temperature=0.0)
        cold = [generate(engine, [GenerationRequest(model, p, params)])[0][0] for p in prompts]
        pool = engine.base.pool
        adapter = next((n for n, f in engine.base.adapters.items() if f == str(model.adapter)), "__base__")
        shared = KVPool.prefix_hashes(adapter, prompts[1], [])
        held = pool.match(shared)
        cached = len(held)
        pool.release(held)  # (release empties the list it is given)
        assert cached >= 40 // PAGE, model.id  # the system prompt's pages were kept and are found again
        warm = [generate(engine, [GenerationRequest(model, p, params)])[0][0] for p in prompts]
        assert warm == cold  # the same answers, computed from cached keys and values


def test_the_stacked_mixed_lora_equals_peft_mixed_batches(tiny_model, adapters):
    """The hand-written mixed-adapter forward against PEFT's own (adapter_names=), token by token."""
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    from selftune.serve.embedded import BASE
    from selftune.serve.mixed_lora import MixedLoRA

    model = AutoModelForCausalLM.from_pretrained(tiny_model, dtype=torch.float32)
    model = PeftModel.from_pretrained(model, str(adapters[0]), adapter_name="one").eval()
    model.load_adapter(str(adapters[1]), adapter_name="two")
    mixer = MixedLoRA()
    mixer.attach(model)
    assert mixer.supports({"one", "two"}) and len(mixer.layers) > 0
    ids = torch.randint(0, 1000, (6, 5))
    names = ["one", BASE, "two", "one", "two", BASE]
    with torch.inference_mode():
        expected = model(input_ids=ids, adapter_names=names).logits
        with mixer.applied([name for name in names for _ in range(5)]):
            # the mixer reads tokens in row order: one owner per token of the [6, 5] batch
            got = model(input_ids=ids).logits
        plain = model(input_ids=ids).logits  # after: PEFT's own adapters are back on
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-4)
    assert not torch.allclose(got[0], got[1])  # the adapters did change the answers
    torch.testing.assert_close(plain[0], expected[0], rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_the_fast_decoder_equals_the_transformers_forward(tiny_model, adapters, dtype):
    """The lean forward against the model's own modules (with the stacked LoRA hooks), step by step over
    the paged pool: a prefill chunk, prompts of different lengths and adapters, then decode steps."""
    from selftune.serve.attention import Segment, StepPlan
    from selftune.serve.embedded import BASE, _LoadedBase

    bases = [_LoadedBase(str(tiny_model), dtype, 1024, 4, fast=fast) for fast in (True, False)]
    names = [BASE] + [base.adapter(folder, set()) for folder in adapters for base in bases][::2]
    assert bases[0].fast is not None and bases[1].fast is None
    torch.manual_seed(0)
    prompts = [torch.randint(0, 1000, (n,)).tolist() for n in (21, 3, 9)]
    pages = [bases[0].pool.reserve(64) for _ in prompts]
    for base in bases[1:]:
        assert [base.pool.reserve(64) for _ in prompts] == pages
    past = [0, 0, 0]
    for step in range(4):
        chunks = [p[past[i]:past[i] + (16 if step == 0 else 1)] for i, p in enumerate(prompts)]
        segments = [Segment(pages[i], past[i], len(c)) for i, c in enumerate(chunks)]
        ids = torch.tensor([t for c in chunks for t in c])
        positions = torch.tensor([past[i] + j for i, c in enumerate(chunks) for j in range(len(c))])
        owners = [names[i] for i, c in enumerate(chunks) for _ in c]
        with torch.inference_mode():
            got, expected = (base.forward(ids, positions, StepPlan.build(base.pool, segments, torch.device("cpu")),
                                          owners) for base in bases)
        tolerance = 1e-5 if dtype == torch.float32 else 3e-2
        torch.testing.assert_close(got, expected, rtol=tolerance, atol=tolerance)
        for i, c in enumerate(chunks):
            past[i] += len(c)
            prompts[i].append(int(expected[sum(len(x) for x in chunks[:i + 1]) - 1].argmax()) % 1000)
