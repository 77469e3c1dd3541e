"""Graders: each compares a model's answers with the references and gives every answer a score in
[0, 1] (the quality is their mean), plus any summary its kind of task calls for.

Adding a grader is adding one module here with a :class:`Grader` subclass that sets ``name``; it is
found by that name (``--grader NAME`` or ``--grader NAME:ARGUMENT``).
"""

from __future__ import annotations

import importlib
import pkgutil

from selftune.errors import SelftuneError
from selftune.evals.graders.base import GRADERS, Grader, GradingContext

__all__ = ["Grader", "GradingContext", "make_grader", "names"]


def _load_all() -> None:
    for module in pkgutil.iter_modules(__path__):
        if module.name != "base":
            importlib.import_module(f"{__name__}.{module.name}")


def names() -> list[str]:
    _load_all()
    return sorted(GRADERS)


def make_grader(spec: str, context: GradingContext) -> Grader:
    """``exact``, ``classification``, ``regex:^\\d+$``, ``judge:gpt-4o`` ... -> the grader."""
    _load_all()
    name, _, argument = spec.partition(":")
    if name not in GRADERS:
        raise SelftuneError(f"unknown grader {name!r}; the graders are: {', '.join(sorted(GRADERS))}")
    return GRADERS[name](argument or None, context)
