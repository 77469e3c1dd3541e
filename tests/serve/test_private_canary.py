"""Canary for the private library internals that serving (and training's packed attention) relies on.

Each is pinned by an upper bound in pyproject.toml; when an upgrade moves one, the test that fails
names the private attribute and the selftune module that uses it, instead of serving silently
answering with the wrong adapter or the wrong attention.
"""

from __future__ import annotations

import pytest
import torch


@pytest.fixture
def lora_model(tiny_model):
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    base = AutoModelForCausalLM.from_pretrained(tiny_model, dtype=torch.float32)
    model = get_peft_model(base, LoraConfig(r=4, target_modules="all-linear", init_lora_weights=False),
                           adapter_name="one")
    model.add_adapter("two", LoraConfig(r=4, target_modules="all-linear", init_lora_weights=False))
    return model.eval()


def _lora_layers(model):
    from peft.tuners.lora import LoraLayer

    return [m for m in model.modules() if isinstance(m, LoraLayer)]


def _logits(model, ids):
    with torch.no_grad():
        return model(input_ids=ids).logits


IDS = torch.tensor([[1, 20, 300, 4000, 50]])


def test_peft_layer_switch_disable_adapters_turns_a_lora_layer_off(lora_model):
    """serve/mixed_lora.py sets LoraLayer._disable_adapters to switch PEFT's own deltas off."""
    layers = _lora_layers(lora_model)
    assert layers, "peft.tuners.lora.LoraLayer no longer found in a LoRA model (serve/mixed_lora.py attach())"
    for name in ("_disable_adapters", "lora_A", "lora_B", "scaling", "lora_variant", "lora_bias"):
        assert hasattr(layers[0], name), (
            f"peft LoraLayer has no {name!r} any more: serve/mixed_lora.py reads it; update it and the peft pin")
    with lora_model.disable_adapter():
        base = _logits(lora_model, IDS)
    for layer in layers:
        layer._disable_adapters = True
    try:
        switched_off = _logits(lora_model, IDS)
    finally:
        for layer in layers:
            layer._disable_adapters = False
    assert torch.allclose(switched_off, base, atol=1e-6), (
        "setting peft LoraLayer._disable_adapters = True no longer disables the adapter "
        "(serve/mixed_lora.py MixedLoRA.applied relies on it)")
    assert not torch.allclose(_logits(lora_model, IDS), base, atol=1e-4)


def test_peft_enable_peft_forward_hooks_runs_one_adapter_per_row(lora_model):
    """serve/embedded.py uses LoraModel._enable_peft_forward_hooks(adapter_names=...) for LoRA variants."""
    hooks = getattr(lora_model.base_model, "_enable_peft_forward_hooks", None)
    assert hooks is not None, ("peft LoraModel._enable_peft_forward_hooks is gone: serve/embedded.py "
                               "(mixed batches of non-plain LoRA adapters) needs another way; update the peft pin")
    singles = {}
    for name in ("one", "two"):
        lora_model.set_adapter(name)
        singles[name] = _logits(lora_model, IDS)
    ids = IDS.repeat(2, 1)
    with torch.no_grad(), hooks(adapter_names=["two", "one"]):
        mixed = lora_model(input_ids=ids).logits
    assert torch.allclose(mixed[0], singles["two"][0], atol=1e-5) and torch.allclose(mixed[1], singles["one"][0],
                                                                                      atol=1e-5), (
        "peft _enable_peft_forward_hooks(adapter_names=) no longer applies one adapter per row")


def test_transformers_attn_implementation_switch_reaches_a_registered_function(tiny_model):
    """models/attention.py sets config._attn_implementation to a name registered with AttentionInterface;
    training's packed attention and serving's paged attention both depend on the model calling it."""
    from transformers import AttentionInterface, AutoModelForCausalLM

    from selftune.models.attention import attention_implementation

    model = AutoModelForCausalLM.from_pretrained(tiny_model, dtype=torch.float32).eval()
    assert hasattr(model.config, "_attn_implementation"), (
        "transformers PretrainedConfig._attn_implementation is gone: models/attention.py switches it")
    sdpa = AttentionInterface()["sdpa"]
    calls = []

    def counting(module, query, key, value, attention_mask, marker=None, **kwargs):
        calls.append(marker)
        return sdpa(module, query, key, value, attention_mask, **kwargs)

    AttentionInterface.register("selftune_canary", counting)
    expected = _logits(model, IDS)
    with attention_implementation(model.config, "selftune_canary"), torch.no_grad():
        got = model(input_ids=IDS, marker="seen").logits
    assert calls and set(calls) == {"seen"}, (
        "transformers no longer calls the attention function named by config._attn_implementation with the "
        "forward's extra keyword arguments (train/attention.py and serve/attention.py pass their plans that way)")
    assert torch.allclose(got, expected, atol=1e-5)
    assert model.config._attn_implementation != "selftune_canary", "the switch did not restore the previous value"


@pytest.mark.skipif(not torch.backends.mkldnn.is_available(), reason="torch built without oneDNN")
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_torch_mkldnn_prepacked_linear_equals_f_linear(dtype):
    """selftune.serve.fast_decoder.prepack/linear use torch.ops.mkldnn._reorder_linear_weight and
    _linear_pointwise (what torch.compile's freezing pass emits): a weight packed once must give
    F.linear's product for any number of rows (bf16: the same bits)."""
    from selftune.serve.fast_decoder import linear, prepack

    torch.manual_seed(0)
    weight = torch.randn(96, 64).to(dtype)
    packed = prepack(weight)
    assert packed is not None, "torch.ops.mkldnn._reorder_linear_weight is gone or failed"
    for rows in (1, 5, 16):
        x = torch.randn(rows, 64).to(dtype)
        expected = torch.nn.functional.linear(x, weight)
        if dtype == torch.bfloat16:
            assert torch.equal(linear(x, weight, packed), expected)
        else:
            torch.testing.assert_close(linear(x, weight, packed), expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("rows", [1, 2, 8, 40])
def test_torch_weight_int8pack_mm_multiplies_by_the_dequantized_weight(rows):
    """selftune.serve.int8_weights runs decode steps through aten._weight_int8pack_mm (private to torch):
    x [N, K] bf16 times int8 values [out, K] with one scale per row must equal x @ (values * scales).T."""
    from selftune.serve import int8_weights

    torch.manual_seed(0)
    weight = int8_weights.quantize(torch.randn(96, 64) * 0.05)
    x = torch.randn(rows, 64)
    got = int8_weights.linear(x, weight)
    expected = x.bfloat16().float() @ weight.dequantized(torch.float32).T
    assert got.dtype == x.dtype and got.shape == (rows, 96)
    torch.testing.assert_close(got, expected, rtol=2e-2, atol=2e-2)
