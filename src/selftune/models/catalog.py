"""The base models a selftune server offers for fine-tuning: the bundled ones and the operator's own.

``SELFTUNE_BASE_MODELS="name=folder-or-hub-id,..."`` adds models under a short name (an API model
id must not contain ``:``). Nothing is loaded here: the list is answered without torch.
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


def base_models() -> dict[str, BaseModel]:
    models = {m.id: BaseModel(m.id, m.id, "selftune") for m in BUNDLED_MODELS.values() if m.gguf_path()}
    for name, source in get_settings().extra_base_models().items():
        models[name] = BaseModel(name, source, "system")
    return models
