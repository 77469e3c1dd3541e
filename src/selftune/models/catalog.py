"""The base models a selftune server offers for fine-tuning: the bundled ones, the operator's own, and
the hosted names mapped onto them.

``SELFTUNE_BASE_MODELS="name=folder-or-hub-id,..."`` adds models under a short name (an API model
id must not contain ``:``). ``SELFTUNE_MODEL_ALIASES="gpt-4.1-nano-2025-04-14=smollm2-135m-instruct,..."``
lets a script written for the hosted service keep its model names: an alias is offered, trained and
served as the model it names, while jobs and fine-tuned model ids keep the name the client used.
Nothing is loaded here: the list is answered without torch.
"""

from __future__ import annotations

from dataclasses import dataclass

from selftune.config import get_settings
from selftune.models.registry import BUNDLED_MODELS


@dataclass(frozen=True)
class BaseModel:
    id: str  # what the API shows and a job's `model` names
    source: str  # what resolve_model() takes: a bundled id, a folder or a hub id
    owned_by: str
    alias_of: str | None = None  # for a hosted name mapped by SELFTUNE_MODEL_ALIASES: the model it trains


def base_models() -> dict[str, BaseModel]:
    settings = get_settings()
    models = {m.id: BaseModel(m.id, m.id, "selftune") for m in BUNDLED_MODELS.values() if m.gguf_path()}
    for name, source in settings.extra_base_models().items():
        models[name] = BaseModel(name, source, "system")
    for alias, target in settings.model_aliases().items():
        if target not in models:  # name to name only: an alias never smuggles in a folder or hub id
            raise ValueError(f"SELFTUNE_MODEL_ALIASES: {alias}={target}: {target!r} is not a base model of this "
                             f"server ({', '.join(sorted(models)) or 'none'}); add it with SELFTUNE_BASE_MODELS")
        models[alias] = BaseModel(alias, models[target].source, "system", alias_of=models[target].id)
    return models
