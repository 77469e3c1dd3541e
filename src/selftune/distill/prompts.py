"""The prompts to send a teacher: chat JSONL (each example's messages, without a final assistant
answer, which becomes the reference a grader may use) or plain text (one prompt a line)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from selftune.data.check import iter_examples
from selftune.data.rules import NO_TRAINED_ASSISTANT
from selftune.errors import SelftuneError
from selftune.models.content import text_of


@dataclass(frozen=True)
class Prompt:
    line: int
    messages: list[dict]
    reference: str = ""  # the file's own answer, if it had one (for graders)
    tools: list[dict] | None = None


def read_prompts(path: Path, system: str | None = None) -> list[Prompt]:
    path = Path(path)
    if not path.is_file():
        raise SelftuneError(f"{path}: no such file")
    if path.suffix == ".jsonl":
        prompts = []
        # a prompt has no answer yet: the rule that asks for something to train on does not apply
        for line, example in iter_examples(path, "sft", ignore=frozenset({NO_TRAINED_ASSISTANT})):
            ((messages, tools),) = example.conversations()
            reference = ""
            if messages[-1]["role"] == "assistant":
                reference = text_of(messages[-1].get("content"))
                messages = messages[:-1]
            prompts.append(Prompt(line, _with_system(messages, system), reference, tools))
    else:
        lines = path.read_text(encoding="utf-8").splitlines()
        prompts = [Prompt(i, _with_system([{"role": "user", "content": text.strip()}], system))
                   for i, text in enumerate(lines, 1) if text.strip()]
    if not prompts:
        raise SelftuneError(f"{path}: no prompts")
    return prompts


def _with_system(messages: list[dict], system: str | None) -> list[dict]:
    if system is None or any(m["role"] in ("system", "developer") for m in messages):
        return messages
    return [{"role": "system", "content": system}, *messages]
