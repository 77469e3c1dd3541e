"""``lora_layers``: adapters on the top N decoder layers only, through PEFT's own layer selection."""

from __future__ import annotations

import pytest
import torch

from selftune.errors import SelftuneError
from selftune.train.config import TrainConfig
from selftune.train.model_setup import LoraSettings, load_for_training
from tests.helpers import FILLER, write_jsonl


def _adapted_layers(model) -> set[int]:
    return {int(name.split(".layers.")[1].split(".")[0]) for name, _ in model.named_parameters() if "lora_A" in name}


def test_only_the_top_layers_get_adapters_and_backward_stops_there(tiny_model):
    model = load_for_training(tiny_model, LoraSettings(rank=4, alpha=8, layers=1), None, torch.device("cpu"))
    assert _adapted_layers(model) == {1}  # the tiny model has layers 0 and 1
    every = load_for_training(tiny_model, LoraSettings(rank=4, alpha=8), None, torch.device("cpu"))
    assert _adapted_layers(every) == {0, 1}
    seen = []
    layers = model.get_base_model().model.layers
    for index, layer in enumerate(layers):
        layer.register_full_backward_hook(lambda *_, i=index: seen.append(i))
    model(input_ids=torch.tensor([[1, 2, 3, 4]]), labels=torch.tensor([[1, 2, 3, 4]])).loss.backward()
    assert seen == [1]  # autograd never entered layer 0: nothing below it trains


def test_more_layers_than_the_model_has_is_refused(tiny_model):
    with pytest.raises(SelftuneError, match="lora_layers=3, but this model has 2 decoder layers"):
        load_for_training(tiny_model, LoraSettings(layers=3), None, torch.device("cpu"))


def test_lora_layers_is_refused_with_full_or_a_continued_adapter(tmp_path):
    write_jsonl(tmp_path / "t.jsonl", FILLER)
    with pytest.raises(ValueError, match="lora_layers places a new LoRA adapter"):
        TrainConfig(train_file=tmp_path / "t.jsonl", full=True, lora_layers=2)


def test_a_run_with_lora_layers_saves_a_top_layer_adapter(tmp_path, tiny_model):
    from selftune.train import run

    write_jsonl(tmp_path / "t.jsonl", FILLER)
    result = run(TrainConfig(model=str(tiny_model), train_file=tmp_path / "t.jsonl", n_epochs=1, lora_layers=1,
                             out=tmp_path / "out"))
    from safetensors.torch import load_file

    names = load_file(result.out / "adapter_model.safetensors")
    assert names and all(".layers.1." in name for name in names)
