"""The hosted fine-tuning file formats, as strict pydantic models.

One line of a ``fine-tune`` file is a :class:`ChatExample` (supervised) or a
:class:`PreferenceExample` (DPO). The models check the *shape* of a line (types, allowed keys
per role); rules that span several messages (tool calls answered, something to train on) live
in :mod:`selftune.data.rules`, so that every broken rule is reported, not only the first.
"""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal, Union

from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag, field_validator, model_validator
from pydantic_core import PydanticCustomError

ROLES = ("system", "developer", "user", "assistant", "tool")
TOOL_NAME_PATTERN = r"^[a-zA-Z0-9_-]{1,64}$"


class _Strict(BaseModel):
    # strict: JSON types are taken as they are (no "1" -> 1); extra="forbid": unknown keys are errors.
    model_config = ConfigDict(strict=True, extra="forbid", frozen=True)


class TextPart(_Strict):
    type: Literal["text"]
    text: str

    @model_validator(mode="before")
    @classmethod
    def _only_text_parts(cls, value: Any) -> Any:
        # One clear error for an image or audio part, instead of three about its keys.
        if isinstance(value, dict) and isinstance(value.get("type"), str) and value["type"] != "text":
            raise PydanticCustomError("unsupported_content_part",
                                      "content parts of type '{kind}' are not supported: only text parts",
                                      {"kind": value["type"]})
        return value


def _content_kind(value: Any) -> str | None:
    if isinstance(value, str):
        return "text"
    if isinstance(value, list):
        return "parts"
    return None


Content = Annotated[
    Union[Annotated[str, Tag("text")], Annotated[list[TextPart], Field(min_length=1), Tag("parts")]],
    Discriminator(
        _content_kind,
        custom_error_type="wrong_type",
        custom_error_message="content must be a string or a list of text parts",
    ),
]


class FunctionCall(_Strict):
    name: str = Field(pattern=TOOL_NAME_PATTERN)
    arguments: str  # a JSON object, encoded as a string, as the hosted API sends it

    @field_validator("arguments")
    @classmethod
    def _arguments_are_a_json_object(cls, value: str) -> str:
        try:
            decoded = json.loads(value)
        except json.JSONDecodeError as exc:
            raise PydanticCustomError("invalid_tool_arguments", "arguments is not valid JSON: {reason}",
                                      {"reason": exc.msg}) from None
        if not isinstance(decoded, dict):
            raise PydanticCustomError("invalid_tool_arguments", "arguments must encode a JSON object")
        return value


class ToolCall(_Strict):
    id: str = Field(min_length=1)
    type: Literal["function"]
    function: FunctionCall


class SystemMessage(_Strict):
    role: Literal["system"]
    content: Content
    name: str | None = None


class DeveloperMessage(_Strict):
    role: Literal["developer"]
    content: Content
    name: str | None = None


class UserMessage(_Strict):
    role: Literal["user"]
    content: Content
    name: str | None = None


class AssistantMessage(_Strict):
    role: Literal["assistant"]
    content: Content | None = None  # may be null only when tool_calls are given (see rules)
    name: str | None = None
    weight: int | None = None  # 0: don't train on this message; 1 (or absent): do
    tool_calls: list[ToolCall] | None = Field(default=None, min_length=1)

    @field_validator("weight", mode="before")
    @classmethod
    def _weight_is_0_or_1(cls, value: Any) -> Any:
        if value is not None and (type(value) is not int or value not in (0, 1)):
            raise PydanticCustomError("invalid_weight", "weight must be 0 or 1, got {value}",
                                      {"value": json.dumps(value)})
        return value

    @property
    def trained(self) -> bool:
        return self.weight != 0


class ToolMessage(_Strict):
    role: Literal["tool"]
    content: Content
    tool_call_id: str = Field(min_length=1)


Message = Annotated[
    Union[SystemMessage, DeveloperMessage, UserMessage, AssistantMessage, ToolMessage],
    Discriminator("role"),
]


class FunctionDefinition(_Strict):
    name: str = Field(pattern=TOOL_NAME_PATTERN)
    description: str | None = None
    parameters: dict[str, Any] | None = None  # a JSON Schema object
    strict: bool | None = None


class FunctionTool(_Strict):
    type: Literal["function"]
    function: FunctionDefinition


class ChatExample(_Strict):
    """One supervised example: a conversation whose assistant messages are trained on."""

    messages: list[Message] = Field(min_length=1)
    tools: list[FunctionTool] | None = None
    parallel_tool_calls: bool | None = None

    def conversations(self) -> list[tuple[list[dict], list[dict] | None]]:
        """The conversation (messages, tools) as plain dicts, for a chat template."""
        return [(_dump(self.messages), _dump(self.tools))]


class PreferenceInput(_Strict):
    messages: list[Message] = Field(min_length=1)
    tools: list[FunctionTool] | None = None
    parallel_tool_calls: bool | None = None


class PreferenceExample(_Strict):
    """One DPO example: a conversation and two candidate answers, the better one first."""

    input: PreferenceInput
    preferred_output: list[AssistantMessage] = Field(min_length=1, max_length=1)
    non_preferred_output: list[AssistantMessage] = Field(min_length=1, max_length=1)

    def conversations(self) -> list[tuple[list[dict], list[dict] | None]]:
        """The input followed by each answer: preferred first, then non-preferred."""
        prompt, tools = _dump(self.input.messages), _dump(self.input.tools)
        return [(prompt + _dump(output), tools) for output in (self.preferred_output, self.non_preferred_output)]


Example = Union[ChatExample, PreferenceExample]


def _dump(models: list[BaseModel] | None) -> list[dict] | None:
    return None if models is None else [m.model_dump(exclude_none=True) for m in models]
