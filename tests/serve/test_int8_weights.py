"""SELFTUNE_SERVE_WEIGHTS=int8: weights rounded to a per-row int8 grid, the same grid on every path."""

from __future__ import annotations

import pytest
import torch

from selftune.models.chat_template import render_prompt
from selftune.serve import int8_weights
from selftune.serve.engine import GenerationRequest, SamplingParams, ServedModel


def test_each_row_maps_its_largest_magnitude_to_127_and_rounds_to_nearest():
    weight = torch.tensor([[0.5, -1.0, 0.25, 0.0], [2.54, 0.01, -0.02, 1.27], [0.0, 0.0, 0.0, 0.0]])
    q = int8_weights.quantize(weight)
    assert q.values.dtype == torch.int8 and q.scales.dtype == int8_weights.ACTIVATION_DTYPE
    assert q.values[0].tolist() == [64, -127, 32, 0]  # 0.5 / (1/127) = 63.5 -> 64 (half away from zero is
    assert q.values[1, 0] == 127 and q.values[1, 3] in (63, 64)  # not promised: within half a step is)
    assert q.values[2].tolist() == [0, 0, 0, 0]  # an all-zero row stays zero (no division by zero)
    steps = q.scales.float()[:, None]
    assert ((q.dequantized(torch.float32) - weight).abs() <= steps / 2 + 1e-7).all()


def test_rounding_in_place_reaches_views_of_the_weight():
    """The lean decoder fuses q/k/v into one tensor whose rows are the modules' weights: rounding the fused
    tensor must round what transformers' modules multiply with too."""
    torch.manual_seed(0)
    fused = torch.randn(12, 8)
    view = fused[4:8]
    q = int8_weights.round_in_place(fused)
    assert torch.equal(fused, q.dequantized(torch.float32))
    assert torch.equal(view, q.dequantized(torch.float32)[4:8])
    assert torch.equal(int8_weights.quantize(fused).values, q.values)  # the grid is a fixed point


def test_the_kernel_is_used_for_few_rows_only():
    x = torch.zeros(1, 8)
    assert int8_weights.use_kernel(x) and not int8_weights.use_kernel(torch.zeros(100, 8))
    assert int8_weights.use_kernel(x.bfloat16())
    assert not int8_weights.use_kernel(torch.zeros(1, 8, dtype=torch.float16))  # not measured: full weights


def _round_model(model) -> None:
    """transformers' model with every projection (and the tied embedding/head) rounded as the lean decoder
    rounds them: the reference for the int8 engine."""
    for module in model.modules():
        if isinstance(module, torch.nn.Linear):
            int8_weights.round_in_place(module.weight.data)
    int8_weights.round_in_place(model.get_input_embeddings().weight.data)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_int8_lean_decoder_equals_transformers_on_the_rounded_weights(tiny_model, dtype, monkeypatch):
    """A prompt (many rows: the rounded weights through oneDNN) and decode steps (one row each: the int8
    kernel, with bf16 activations) against transformers' own modules holding the rounded weights."""
    from selftune.serve.attention import Segment, StepPlan
    from selftune.serve.embedded import BASE, _LoadedBase

    kernel_calls = []
    monkeypatch.setattr(int8_weights, "linear", lambda x, w, real=int8_weights.linear: kernel_calls.append(len(x))
                        or real(x, w))
    int8 = _LoadedBase(str(tiny_model), dtype, 1024, 4, weights="int8")
    full = _LoadedBase(str(tiny_model), dtype, 1024, 4, fast=False)
    original = full.model.model.layers[0].self_attn.q_proj.weight.detach().clone()
    _round_model(full.model)
    assert not torch.equal(original, full.model.model.layers[0].self_attn.q_proj.weight)
    assert torch.equal(int8.model.model.layers[0].self_attn.q_proj.weight,
                       full.model.model.layers[0].self_attn.q_proj.weight)
    assert torch.equal(int8.model.get_input_embeddings().weight, full.model.get_input_embeddings().weight)
    torch.manual_seed(0)
    prompt = torch.randint(0, 1000, (24,)).tolist()
    pages = int8.pool.reserve(64)
    assert full.pool.reserve(64) == pages
    past, chunk = 0, prompt
    for step in range(6):
        plan_args = ([Segment(pages, past, len(chunk))], torch.device("cpu"))
        ids, positions = torch.tensor(chunk), torch.arange(past, past + len(chunk))
        with torch.inference_mode():
            got, expected = (base.logits(base.forward(ids, positions, StepPlan.build(base.pool, *plan_args),
                                                      [BASE] * len(chunk))) for base in (int8, full))
        kernel = int8_weights.use_kernel(torch.zeros(len(chunk), 1, dtype=dtype))
        assert kernel == (step > 0) and len(kernel_calls) == (4 * 2 + 1 if kernel else 0)  # 4 per layer, head
        kernel_calls.clear()
        # the kernel rounds activations to bf16: fp32 then agrees to bf16's precision only
        tolerance = 1e-4 if dtype == torch.float32 and not kernel else 5e-2
        torch.testing.assert_close(got, expected, rtol=tolerance, atol=tolerance)
        assert int(got[-1].argmax()) == int(expected[-1].argmax())
        past += len(chunk)
        chunk = [int(expected[-1].argmax())]


def test_int8_engine_answers_equal_transformers_on_the_rounded_weights(tiny_model, generate):
    """Greedy answers of the engine with SELFTUNE_SERVE_WEIGHTS=int8, several requests in one batch."""
    from transformers import AutoModelForCausalLM

    from selftune.serve.embedded import EmbeddedEngine

    engine = EmbeddedEngine(dtype="fp32", kv_tokens=4096, step_tokens=64, threads=1, weights="int8")
    try:
        model = ServedModel("tiny", str(tiny_model))
        tokenizer = engine.tokenizer(model)
        prompts = [render_prompt(tokenizer, [{"role": "user", "content": text}])
                   for text in ("Where is my card?", "How do I top up my account with a card?", "Hi")]
        answers = generate(engine, [GenerationRequest(model, p, SamplingParams(max_tokens=12, temperature=0.0))
                                    for p in prompts])
    finally:
        engine.close()
    reference = AutoModelForCausalLM.from_pretrained(tiny_model, dtype=torch.float32)
    _round_model(reference)
    for prompt, (tokens, _) in zip(prompts, answers, strict=True):
        out = reference.generate(torch.tensor([prompt]), max_new_tokens=12, do_sample=False,
                                 attention_mask=torch.ones(1, len(prompt), dtype=torch.long))
        assert tokens == out[0, len(prompt):].tolist()


def test_the_setting_reaches_the_engine(tmp_path):
    from pydantic import ValidationError

    from selftune.api.app import _serving_engine
    from selftune.config import Settings

    engine = _serving_engine(Settings(home=tmp_path, serve_engine="embedded", serve_weights="int8"))
    try:
        assert engine.weights == "int8"
    finally:
        engine.close()
    with pytest.raises(ValidationError, match="serve_weights"):
        Settings(home=tmp_path, serve_weights="int4")
