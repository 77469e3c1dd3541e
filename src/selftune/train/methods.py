"""The training methods and their hyperparameters: one table that the API, the worker, the relay and
the trainer all read.

A method names the file format it trains on (stage 1's ``sft`` / ``dpo``), how the API words that
format, the hosted hyperparameters it takes and its base learning rates. A hyperparameter has one
range, checked the same way for an API request and for a ``TrainConfig``; every one defaults to
``"auto"`` (resolved from the data by :mod:`selftune.train.hyperparams`). Adding a method or a
hyperparameter is a change here; the code that trains it is the only other part to write.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from selftune.data.problems import Purpose

AUTO = "auto"


class Method(StrEnum):
    SUPERVISED = "supervised"
    DPO = "dpo"


@dataclass(frozen=True)
class Hyperparameter:
    """A hosted hyperparameter: ``"auto"`` or a number of ``kind`` in (``low``, ``high``]
    (``[low, high]`` when ``low_included``)."""

    name: str
    kind: type
    low: float
    high: float
    low_included: bool

    def problem(self, value) -> str | None:
        """Why ``value`` is not acceptable, or None when it is."""
        if value == AUTO:
            return None
        number = isinstance(value, (int, float)) and not isinstance(value, bool)
        if not number or (self.kind is int and not float(value).is_integer()):
            return f"{self.name} must be 'auto' or {'an integer' if self.kind is int else 'a number'}, not {value!r}"
        if not (self.low <= value if self.low_included else self.low < value) or value > self.high:
            interval = f"{'[' if self.low_included else '('}{self.low}, {self.high}]"
            return f"{self.name} must be 'auto' or in {interval}, not {value!r}"
        return None


HYPERPARAMETERS: dict[str, Hyperparameter] = {h.name: h for h in (
    Hyperparameter("batch_size", int, 1, 256, True),
    Hyperparameter("learning_rate_multiplier", float, 0, 10, False),
    Hyperparameter("n_epochs", int, 1, 50, True),
    Hyperparameter("beta", float, 0, 2, False),
    Hyperparameter("time_budget", float, 0, 7 * 24 * 3600, False),
)}
# the hosted API's older, top-level ``hyperparameters`` field shows these (every method takes them)
SHARED_HYPERPARAMETERS = ("batch_size", "learning_rate_multiplier", "n_epochs")
# selftune's own: seconds the training may take (``"auto"``: no budget). The hosted API has no such
# knob; a CPU user with more data than time needs it (docs/api.md, "Extensions").
EXTENSION_HYPERPARAMETERS = ("time_budget",)


@dataclass(frozen=True)
class MethodSpec:
    method: Method
    file_format: Purpose  # what stage 1 (``selftune.data.check``) calls the format it trains on
    file_format_name: str  # how the API's messages name that format
    hyperparameters: tuple[str, ...]  # in the order the API shows them
    base_learning_rate: dict[str, float]  # at learning_rate_multiplier 1.0, for "lora" and "full"


METHODS: dict[Method, MethodSpec] = {spec.method: spec for spec in (
    MethodSpec(Method.SUPERVISED, "sft", "chat (messages)", (*SHARED_HYPERPARAMETERS, *EXTENSION_HYPERPARAMETERS),
               {"lora": 1e-3, "full": 5e-5}),
    MethodSpec(Method.DPO, "dpo", "preference (input, preferred_output, non_preferred_output)",
               (*SHARED_HYPERPARAMETERS, "beta", *EXTENSION_HYPERPARAMETERS), {"lora": 5e-5, "full": 1e-6}),
)}


def method_spec(method: str) -> MethodSpec:
    return METHODS[Method(method)]


def methods_taking(name: str) -> list[Method]:
    return [m for m, spec in METHODS.items() if name in spec.hyperparameters]


def format_name(file_format: str | None) -> str:
    """The API's name for a file format; "another" for one no method trains on."""
    return next((s.file_format_name for s in METHODS.values() if s.file_format == file_format), "another")


def hyperparameter_problem(name: str, value) -> str | None:
    """Why ``value`` is not acceptable for hyperparameter ``name``, or None when it is."""
    return HYPERPARAMETERS[name].problem(value)


def one_of(values) -> str:
    """``'a' or 'b'``: how messages list the accepted values."""
    return " or ".join(repr(str(v)) for v in values)
