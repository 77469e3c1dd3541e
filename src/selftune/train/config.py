"""``TrainConfig``: every knob of a training run, typed and validated in one place.

The CLI options, the Python API, the worker and ``training.json`` all use this one model, so a
setting means the same thing everywhere. Names follow the hosted API's hyperparameters
(``n_epochs``, ``batch_size``, ``learning_rate_multiplier``, ``beta``), whose ranges and methods
are in :mod:`selftune.train.methods`; ``"auto"`` is resolved from the data by
:mod:`selftune.train.hyperparams`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal, Union

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from selftune.models.adapter import ADAPTER_FILES, is_adapter_folder
from selftune.models.registry import DEFAULT_MODEL
from selftune.train.methods import HYPERPARAMETERS, Method, method_spec, methods_taking, one_of

Auto = Literal["auto"]


class TrainConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model: str = Field(DEFAULT_MODEL, description="Base model: a bundled id, a Hugging Face hub id or a local folder.")
    train_file: Path = Field(description="Training file (chat JSONL for supervised, preference JSONL for dpo).")
    valid_file: Path | None = Field(None, description="Validation file, same format; evaluated every epoch.")
    method: Method = Field(Method.SUPERVISED, description="Supervised fine-tuning or DPO.")
    full: bool = Field(False, description="Train every weight instead of a LoRA adapter.")
    n_epochs: Union[int, Auto] = Field("auto", description="Passes over the training file; auto: the hosted rule.")
    batch_size: Union[int, Auto] = Field(
        "auto", description="Examples per optimizer step, on average: steps hold a token budget of "
                            "batch_size x mean example length, so long and short examples mix fairly.")
    learning_rate_multiplier: Union[float, Auto] = Field(
        "auto", description="Scales the method's base learning rate (see docs/training.md).")
    beta: Union[float, Auto] = Field("auto", description="DPO: strength of the pull towards the reference model.")
    lora_rank: int = Field(16, ge=1, le=1024, description="LoRA rank.")
    lora_alpha: int | None = Field(None, ge=1, description="LoRA alpha; default 2 x rank.")
    lora_dropout: float = Field(0.0, ge=0.0, lt=1.0, description="Dropout on the LoRA input.")
    lora_targets: Union[str, list[str]] = Field("all-linear", description="Modules that get adapters.")
    lora_layers: int | None = Field(
        None, ge=1, description="Adapt only the top N decoder layers: backward stops at the lowest adapted layer, "
                                "so a step costs less. Default: every layer.")
    seed: int = Field(0, description="Seeds data order, adapter initialisation and dropout.")
    out: Path = Field(Path("selftune-out"), description="Output folder: adapter or model, training.json, "
                                                        "results.csv, checkpoints/.")
    resume: bool = Field(False, description="Continue from the newest checkpoint in `out`.")
    init_adapter: Path | None = Field(
        None, description="Start from this LoRA adapter (a fine-tuned model's folder) instead of a new one: training "
                          "continues from its weights, on the base `model` it was trained on.")
    time_budget: float | None = Field(None, gt=0, description="Seconds the run may take; the schedule is "
                                                              "planned to end within it.")
    max_length: int | None = Field(None, ge=8, description="Longest example in tokens; longer ones are cut. "
                                                           "Default: the model's context length.")
    eval_every: int | None = Field(None, ge=1, description="Also evaluate the validation file every N steps.")
    early_stopping_patience: int | None = Field(
        None, ge=1, description="Stop when validation loss has not improved for this many evaluations.")
    keep_checkpoints: int = Field(3, ge=1, description="Checkpoints kept on disk (the newest ones).")
    precision: Literal["auto", "bf16", "fp32"] = Field("auto", description="auto: bf16 where the hardware has it.")
    share_prefixes: bool = Field(True, description="Compute a prefix shared by examples of a batch once.")
    events_file: Path | None = Field(None, description="Append one JSON line per step, evaluation, checkpoint.")
    progress: bool = Field(False, description="Show a progress bar on the terminal.")

    @field_validator("time_budget", mode="before")
    @classmethod
    def _no_budget(cls, value):
        """The API's ``"auto"`` time budget (what a job without one carries) is no budget."""
        return None if value == "auto" else value

    @model_validator(mode="after")
    def _check(self) -> TrainConfig:
        for name, hyperparameter in HYPERPARAMETERS.items():
            value = getattr(self, name)
            if value is None:  # time_budget: None is its "auto"
                continue
            problem = hyperparameter.problem(value)
            if problem:
                raise ValueError(problem)
            if value != "auto" and name not in method_spec(self.method).hyperparameters:
                raise ValueError(f"{name} applies to method={one_of(methods_taking(name))} only")
        if self.init_adapter is not None and self.full:
            raise ValueError("init_adapter continues a LoRA adapter; it can't be combined with full")
        if self.lora_layers is not None and (self.full or self.init_adapter is not None):
            raise ValueError("lora_layers places a new LoRA adapter; it can't be combined with full or init_adapter "
                             "(a continued adapter keeps its own layers)")
        if self.init_adapter is not None and not is_adapter_folder(self.init_adapter):
            raise ValueError(f"{self.init_adapter} is not a LoRA adapter folder "
                             f"(it needs {' and '.join(ADAPTER_FILES)})")
        if self.early_stopping_patience and not self.valid_file:
            raise ValueError("early_stopping_patience needs a valid_file to watch")
        return self


def config_problems(error: ValidationError) -> str:
    """A refused TrainConfig as one line a user can act on: ``field: reason; ...``."""
    def one(problem: dict) -> str:
        field = ".".join(str(p) for p in problem.get("loc", ()))
        message = problem.get("msg", "").removeprefix("Value error, ")
        return f"{field}: {message}" if field else message

    return "; ".join(one(problem) for problem in error.errors())
