"""Token counts of examples, measured with the base model's own tokenizer and chat template."""

from __future__ import annotations

from dataclasses import dataclass

from selftune.data.formats import Example
from selftune.models.chat_template import render_for_training, render_text
from selftune.models.tokenizer import context_length, load_tokenizer


@dataclass(frozen=True)
class ExampleTokens:
    total: int  # tokens of the longest conversation of the example (DPO has two)
    trained: int  # tokens that carry loss, over all its conversations
    conversations: tuple[int, ...]  # tokens of each conversation (DPO: input + each answer)


class TokenCounter:
    def __init__(self, model: str):
        self.model = model
        self.tokenizer = load_tokenizer(model)
        self.context = context_length(model)

    def count(self, example: Example) -> ExampleTokens:
        rendered = [render_for_training(self.tokenizer, messages, tools)
                    for messages, tools in example.conversations()]
        lengths = tuple(len(r.input_ids) for r in rendered)
        return ExampleTokens(total=max(lengths), trained=sum(r.n_trained for r in rendered), conversations=lengths)

    def overflow(self, example: Example) -> int | None:
        """Token count of the example if it is longer than the context, else None.

        Cheap for the common case: a token covers at least one byte of the rendered text, so
        text no longer in bytes than the context can't overflow and is never tokenized.
        """
        longest = 0
        for messages, tools in example.conversations():
            text = render_text(self.tokenizer, messages, tools)
            if len(text.encode()) <= self.context:
                continue
            longest = max(longest, len(self.tokenizer(text, add_special_tokens=False)["input_ids"]))
        return longest if longest > self.context else None
