"""Shapes of ``/v1/responses``, as ``openai.types.responses`` names them.

The request keeps unknown fields (``extra="allow"``) so that the service refuses each parameter it does
not support by name, with a 400, instead of silently ignoring it. ``input`` and ``tools`` stay loose
here: :mod:`selftune.api.responses.items` reads them item by item, so that a refusal names the item.
"""

from __future__ import annotations

from typing import Any, Literal, Union

from pydantic import BaseModel, ConfigDict, Field

from selftune.api.metadata import METADATA_SCHEMA

MIN_OUTPUT_TOKENS = 16  # the hosted API's lower bound of max_output_tokens


class TextConfig(BaseModel):
    model_config = ConfigDict(extra="allow")

    format: dict[str, Any] | None = None  # {"type": "text" | "json_object" | "json_schema", ...}
    verbosity: Literal["low", "medium", "high"] | None = None


class ResponseRequest(BaseModel):
    # extra fields are kept for the service to refuse by name, never accepted: the schema says so
    model_config = ConfigDict(extra="allow", json_schema_extra={"additionalProperties": False})

    model: str
    input: Union[str, list[dict[str, Any]]]
    instructions: str | None = None
    previous_response_id: str | None = None
    max_output_tokens: int | None = Field(None, ge=MIN_OUTPUT_TOKENS)
    temperature: float | None = Field(None, ge=0, le=2)
    top_p: float | None = Field(None, gt=0, le=1)
    text: TextConfig | None = None
    tools: list[dict[str, Any]] | None = None
    tool_choice: Union[Literal["none", "auto", "required"], dict[str, Any], None] = None
    parallel_tool_calls: bool | None = None
    metadata: dict[str, str] | None = Field(None, json_schema_extra=METADATA_SCHEMA)
    store: bool | None = None  # None: true, as hosted
    stream: bool | None = None
    background: bool | None = None  # only false: there is no background mode
    truncation: Literal["auto", "disabled"] | None = None  # only "disabled": the context is never cut
    user: str | None = None  # an end-user id; recorded nowhere yet, harmless to accept


class OutputText(BaseModel):
    type: Literal["output_text"] = "output_text"
    text: str
    annotations: list[dict[str, Any]] = Field(default_factory=list)
    logprobs: list[dict[str, Any]] = Field(default_factory=list)


ItemStatus = Literal["in_progress", "completed", "incomplete"]


class OutputMessage(BaseModel):
    id: str
    type: Literal["message"] = "message"
    role: Literal["assistant"] = "assistant"
    status: ItemStatus
    content: list[OutputText]


class FunctionCall(BaseModel):
    id: str
    type: Literal["function_call"] = "function_call"
    call_id: str
    name: str
    arguments: str  # JSON text
    status: ItemStatus = "completed"


OutputItem = Union[OutputMessage, FunctionCall]


class InputTokensDetails(BaseModel):
    cached_tokens: int = 0
    cache_write_tokens: int = 0


class OutputTokensDetails(BaseModel):
    reasoning_tokens: int = 0


class ResponseUsage(BaseModel):
    input_tokens: int
    input_tokens_details: InputTokensDetails = Field(default_factory=InputTokensDetails)
    output_tokens: int
    output_tokens_details: OutputTokensDetails = Field(default_factory=OutputTokensDetails)
    total_tokens: int


class IncompleteDetails(BaseModel):
    reason: Literal["max_output_tokens"]


class ResponseError(BaseModel):
    code: str
    message: str


ResponseStatus = Literal["completed", "failed", "in_progress", "incomplete"]


class Response(BaseModel):
    id: str
    object: Literal["response"] = "response"
    created_at: int
    status: ResponseStatus
    completed_at: int | None = None
    error: ResponseError | None = None
    incomplete_details: IncompleteDetails | None = None
    instructions: str | None = None
    max_output_tokens: int | None = None
    model: str
    output: list[OutputItem] = Field(default_factory=list)
    parallel_tool_calls: bool = True
    previous_response_id: str | None = None
    store: bool = True
    temperature: float = 1.0
    text: dict[str, Any]
    tool_choice: Union[str, dict[str, Any]] = "auto"
    tools: list[dict[str, Any]] = Field(default_factory=list)
    top_p: float = 1.0
    truncation: Literal["disabled"] = "disabled"
    usage: ResponseUsage | None = None
    user: str | None = None
    metadata: dict[str, str] = Field(default_factory=dict)


class ResponseDeleted(BaseModel):
    id: str
    object: Literal["response"] = "response"
    deleted: bool


# input items as ``GET /v1/responses/{id}/input_items`` lists them (``openai.types.responses.ResponseItem``)


class InputText(BaseModel):
    type: Literal["input_text"] = "input_text"
    text: str


class InputMessage(BaseModel):
    id: str
    type: Literal["message"] = "message"
    role: Literal["user", "system", "developer"]
    status: ItemStatus = "completed"
    content: list[InputText]


class FunctionCallOutput(BaseModel):
    id: str
    type: Literal["function_call_output"] = "function_call_output"
    call_id: str
    output: str
    status: ItemStatus = "completed"


Item = Union[InputMessage, OutputMessage, FunctionCall, FunctionCallOutput]
