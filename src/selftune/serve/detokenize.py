"""Text of an answer as it grows, token by token: stop sequences found, nothing half-printed.

Text that could still become a stop sequence is held back until it can't, and a token that ends in
the middle of a UTF-8 character (the tokenizer shows U+FFFD) waits for the next one, so a streamed
answer never shows what the final answer won't contain.
"""

from __future__ import annotations


class TextStream:
    def __init__(self, tokenizer, stop: list[str]):
        self.tokenizer = tokenizer
        self.stop = [s for s in stop if s]
        self.ids: list[int] = []
        self.sent = 0  # characters of the text already handed out
        self.text = ""  # the answer so far, as handed out
        self.stopped = False

    def add(self, token: int) -> str:
        """Append a token; returns the new text that is now safe to show."""
        self.ids.append(token)
        text = self.tokenizer.decode(self.ids, skip_special_tokens=True)
        if text.endswith("\ufffd"):
            return ""
        for stop in self.stop:
            at = text.find(stop, max(0, self.sent - len(stop) + 1))
            if at != -1:
                self.stopped = True
                return self._take(text, at)
        hold = max((_overlap(text, s) for s in self.stop), default=0)
        return self._take(text, len(text) - hold)

    def finish(self) -> str:
        """The held-back rest, once the answer is complete (it did not become a stop sequence)."""
        if self.stopped:
            return ""
        return self._take(self.tokenizer.decode(self.ids, skip_special_tokens=True), None)

    def _take(self, text: str, end: int | None) -> str:
        end = len(text) if end is None else end
        if end <= self.sent:
            return ""
        piece, self.sent = text[self.sent:end], end
        self.text += piece
        return piece


def _overlap(text: str, stop: str) -> int:
    """Length of the longest end of ``text`` that is a beginning of ``stop``."""
    for n in range(min(len(stop) - 1, len(text)), 0, -1):
        if text.endswith(stop[:n]):
            return n
    return 0
