"""Hosted model names mapped onto this server's base models (SELFTUNE_MODEL_ALIASES): name to name only."""

from __future__ import annotations

import pytest

from selftune.models.catalog import base_models


def test_an_alias_is_offered_as_the_model_it_names(monkeypatch, tiny_model):
    monkeypatch.setenv("SELFTUNE_BASE_MODELS", f"tiny={tiny_model}")
    monkeypatch.setenv("SELFTUNE_MODEL_ALIASES", "gpt-4.1-nano-2025-04-14=tiny, gpt-4o-mini-2024-07-18 = tiny")
    models = base_models()
    alias = models["gpt-4.1-nano-2025-04-14"]
    assert (alias.id, alias.source, alias.alias_of, alias.owned_by) == ("gpt-4.1-nano-2025-04-14", str(tiny_model),
                                                                         "tiny", "system")
    assert models["gpt-4o-mini-2024-07-18"].source == str(tiny_model)


@pytest.mark.parametrize(("aliases", "message"), [
    ("gpt-4.1-nano-2025-04-14=/models/qwen", "not a base model of this server"),  # a folder: refused
    ("gpt-4.1-nano-2025-04-14=org/some-hub-model", "not a base model of this server"),
    ("gpt-4.1-nano-2025-04-14", "is not 'hosted-name=base-model'"),
    ("ft:gpt-4o:x=tiny", "is not 'hosted-name=base-model'"),
])
def test_a_bad_alias_is_refused_with_its_setting_named(monkeypatch, tiny_model, aliases, message):
    monkeypatch.setenv("SELFTUNE_BASE_MODELS", f"tiny={tiny_model}")
    monkeypatch.setenv("SELFTUNE_MODEL_ALIASES", aliases)
    with pytest.raises(ValueError, match=message) as refused:
        base_models()
    assert str(refused.value).startswith("SELFTUNE_MODEL_ALIASES:")
