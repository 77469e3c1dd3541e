"""selftune: self-hosted, OpenAI-compatible fine-tuning of open language models.

The public Python API grows with each pipeline stage; import from here, not from submodules.
"""

import warnings

from selftune.data import Report, check
from selftune.errors import SelftuneError
from selftune.models import DEFAULT_MODEL, resolve_model

# PEFT reads a model property that transformers has deprecated; every adapter load would print a
# FutureWarning that only PEFT's authors can act on.
warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)

__version__ = "0.1.0"
__all__ = ["DEFAULT_MODEL", "Report", "SelftuneError", "__version__", "check", "resolve_model"]
