"""Shapes of ``/v1/chat/completions``, as ``openai.types.chat`` names them.

The request keeps unknown fields (``extra="allow"``) so that the service can refuse each parameter
it does not support by name, with a 400, instead of silently ignoring it.
"""

from __future__ import annotations

import json
from typing import Any, ClassVar, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, SerializerFunctionWrapHandler, field_validator, model_serializer

from selftune.api.metadata import METADATA_SCHEMA


class TextPart(BaseModel):
    type: str
    text: str | None = None


class CalledFunction(BaseModel):
    name: str
    arguments: str

    @field_validator("arguments")
    @classmethod
    def _json(cls, arguments: str) -> str:
        """The prompt renders the arguments as JSON: text that isn't JSON is refused here, by name."""
        try:
            json.loads(arguments)
        except ValueError:
            raise ValueError("arguments must be JSON text") from None
        return arguments


class SentToolCall(BaseModel):
    """A tool call of an earlier assistant message, sent back in ``messages``."""

    model_config = ConfigDict(extra="allow")

    id: str
    type: Literal["function"]
    function: CalledFunction


class Message(BaseModel):
    model_config = ConfigDict(extra="allow")

    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: Union[str, list[TextPart], None] = None
    name: str | None = None
    tool_calls: list[SentToolCall] | None = None
    tool_call_id: str | None = None


class FunctionDefinition(BaseModel):
    name: str = Field(pattern=r"^[a-zA-Z0-9_-]{1,64}$")
    description: str | None = None
    parameters: dict[str, Any] | None = None
    strict: bool | None = None


class Tool(BaseModel):
    type: Literal["function"]
    function: FunctionDefinition


class NamedFunction(BaseModel):
    name: str


class NamedToolChoice(BaseModel):
    type: Literal["function"]
    function: NamedFunction


class StreamOptions(BaseModel):
    include_usage: bool = False


class ChatCompletionRequest(BaseModel):
    # extra fields are kept for the service to refuse by name, never accepted: the schema says so
    model_config = ConfigDict(extra="allow", json_schema_extra={"additionalProperties": False})

    model: str
    messages: list[Message] = Field(min_length=1)
    max_tokens: int | None = Field(None, ge=1)
    max_completion_tokens: int | None = Field(None, ge=1)
    temperature: float | None = Field(None, ge=0, le=2)
    top_p: float | None = Field(None, gt=0, le=1)
    n: int | None = Field(None, ge=1, le=128)
    stop: Union[str, list[str], None] = None
    seed: int | None = None
    presence_penalty: float | None = Field(None, ge=-2, le=2)
    frequency_penalty: float | None = Field(None, ge=-2, le=2)
    logprobs: bool | None = None
    top_logprobs: int | None = Field(None, ge=0, le=20)
    stream: bool | None = None
    stream_options: StreamOptions | None = None
    response_format: dict[str, Any] | None = None
    tools: list[Tool] | None = None
    tool_choice: Union[Literal["none", "auto", "required"], NamedToolChoice, None] = None
    parallel_tool_calls: bool | None = None
    user: str | None = None  # an end-user id; recorded nowhere yet, harmless to accept
    metadata: dict[str, str] | None = Field(None, json_schema_extra=METADATA_SCHEMA)  # kept when store=true
    store: bool | None = None


class TopLogprob(BaseModel):
    token: str
    logprob: float
    bytes: list[int] | None = None


class TokenLogprob(TopLogprob):
    top_logprobs: list[TopLogprob] = Field(default_factory=list)


class ChoiceLogprobs(BaseModel):
    content: list[TokenLogprob] | None = None
    refusal: list[TokenLogprob] | None = None


class FunctionCall(BaseModel):
    name: str
    arguments: str  # JSON text, as the hosted API sends it


class ToolCall(BaseModel):
    id: str
    type: Literal["function"] = "function"
    function: FunctionCall


class AssistantMessage(BaseModel):
    role: Literal["assistant"] = "assistant"
    content: str | None = None
    refusal: str | None = None
    tool_calls: list[ToolCall] | None = None


FinishReason = Literal["stop", "length", "tool_calls"]


class Choice(BaseModel):
    index: int
    message: AssistantMessage
    logprobs: ChoiceLogprobs | None = None
    finish_reason: FinishReason


class Usage(BaseModel):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


class ChatCompletion(BaseModel):
    id: str
    object: Literal["chat.completion"] = "chat.completion"
    created: int
    model: str
    choices: list[Choice]
    usage: Usage
    system_fingerprint: str | None = None


class ToolCallDelta(ToolCall):
    index: int


class Delta(BaseModel):
    role: Literal["assistant"] | None = None
    content: str | None = None
    tool_calls: list[ToolCallDelta] | None = None


class ChunkChoice(BaseModel):
    index: int
    delta: Delta
    logprobs: ChoiceLogprobs | None = None
    finish_reason: FinishReason | None = None


class ChatCompletionChunk(BaseModel):
    id: str
    object: Literal["chat.completion.chunk"] = "chat.completion.chunk"
    created: int
    model: str
    choices: list[ChunkChoice]
    usage: Usage | None = None
    system_fingerprint: str | None = None


# Stored completions (store: true), as openai.types.chat names them.


class _OmitsUnset(BaseModel):
    """A shape some of whose fields the hosted API leaves out, rather than sending null, when they
    have no value: those named in ``omitted_when_none``."""

    omitted_when_none: ClassVar[tuple[str, ...]] = ()

    @model_serializer(mode="wrap")
    def _omit_unset(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        body = handler(self)
        for name in self.omitted_when_none:
            if body.get(name) is None:
                body.pop(name, None)
        return body


class StoredChatCompletion(_OmitsUnset, ChatCompletion):
    """A stored chat completion: the answer, its metadata, and the sampling settings of the request
    that the hosted API echoes (each only when the request set it)."""

    omitted_when_none: ClassVar[tuple[str, ...]] = (
        "temperature", "top_p", "seed", "presence_penalty", "frequency_penalty", "tools", "tool_choice",
        "response_format")

    metadata: dict[str, str] = Field(default_factory=dict)
    temperature: float | None = None
    top_p: float | None = None
    seed: int | None = None
    presence_penalty: float | None = None
    frequency_penalty: float | None = None
    tools: list[dict[str, Any]] | None = None
    tool_choice: Union[str, dict[str, Any], None] = None
    response_format: dict[str, Any] | None = None


class StoredMessage(_OmitsUnset):
    """One message of a stored completion's request (``ChatCompletionStoreMessage``): its text, and the
    content parts when it was sent as parts."""

    omitted_when_none: ClassVar[tuple[str, ...]] = ("name", "tool_calls", "tool_call_id")

    id: str  # <completion id>-<index>
    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | None = None
    content_parts: list[dict[str, Any]] | None = None
    name: str | None = None
    tool_calls: list[dict[str, Any]] | None = None
    tool_call_id: str | None = None


class ChatCompletionDeleted(BaseModel):
    id: str
    object: Literal["chat.completion.deleted"] = "chat.completion.deleted"
    deleted: bool
