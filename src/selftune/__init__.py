"""selftune: self-hosted, OpenAI-compatible fine-tuning of open language models.

The public Python API grows with each pipeline stage; import from here, not from submodules.
"""

from selftune.data import Report, check
from selftune.errors import SelftuneError
from selftune.models import DEFAULT_MODEL, resolve_model

__version__ = "0.1.0"
__all__ = ["DEFAULT_MODEL", "Report", "SelftuneError", "__version__", "check", "resolve_model"]
