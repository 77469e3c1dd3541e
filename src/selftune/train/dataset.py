"""Training files -> token sequences with loss masks, ready to pack.

Files are validated with stage 1 first (:func:`selftune.data.check`); an invalid file stops the run
with stage 1's report. Then each example is rendered with the model's chat template
(:func:`selftune.models.chat_template.render_for_training`).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

from selftune.data import check
from selftune.data.check import iter_examples
from selftune.data.formats import ChatExample, PreferenceExample
from selftune.data.problems import Purpose
from selftune.errors import SelftuneError
from selftune.models.chat_template import render_for_training
from selftune.train.packing import Sequence

ERRORS_LISTED = 10


class InvalidTrainingFile(SelftuneError):
    """A training or validation file failed stage 1's check, or has an example that can't be trained.

    ``path`` is the file, ``line`` and ``field`` the first problem in it (None when it is about the
    whole file), so a caller can say which of its inputs is wrong without reading the message.
    """

    def __init__(self, message: str, path: Path, line: int | None = None, field: str | None = None):
        super().__init__(message)
        self.path, self.line, self.field = Path(path), line, field


@dataclass(frozen=True)
class PreferencePair:
    """One DPO example: the same prompt with the preferred and the rejected answer."""

    chosen: Sequence
    rejected: Sequence


@dataclass
class TrainingData:
    path: Path
    purpose: Purpose
    sequences: list[Sequence] = field(default_factory=list)  # sft
    pairs: list[PreferencePair] = field(default_factory=list)  # dpo
    lines: list[int] = field(default_factory=list)  # source line of each example
    truncated: int = 0  # examples cut to max_length
    sha256: str = ""

    def __len__(self) -> int:
        return len(self.sequences) if self.purpose == "sft" else len(self.pairs)

    @property
    def n_tokens(self) -> int:
        if self.purpose == "sft":
            return sum(len(s) for s in self.sequences)
        return sum(len(p.chosen) + len(p.rejected) for p in self.pairs)

    @property
    def n_trained(self) -> int:
        if self.purpose == "sft":
            return sum(int(s.trained.sum()) for s in self.sequences)
        return sum(int(p.chosen.trained.sum() + p.rejected.trained.sum()) for p in self.pairs)

    def lengths(self) -> list[int]:
        """Tokens per example (both answers of a preference pair): what batching budgets by, and the
        unit of training speed (:func:`selftune.data.estimate.stepped_tokens` counts the same)."""
        if self.purpose == "sft":
            return [len(s) for s in self.sequences]
        return [len(p.chosen) + len(p.rejected) for p in self.pairs]

    @cached_property
    def targets(self) -> list[int]:
        """Tokens the loss predicts in each supervised example (a step's loss is averaged over them)."""
        return [int(s.trained[1:].sum()) for s in self.sequences]

    def example(self, index: int) -> Sequence:
        return self.sequences[index] if self.purpose == "sft" else self.pairs[index].chosen


def load_training_file(path: Path, tokenizer, purpose: Purpose, max_length: int) -> TrainingData:
    """Validate, render and tokenise every example of ``path``; examples longer than
    ``max_length`` tokens are cut (counted in ``truncated``), and an example left with no trained
    token is an error naming its line."""
    path = Path(path)
    report = check(path, purpose=purpose)
    if not report.valid:
        shown = "\n".join(p.format(str(path)) for p in report.errors[:ERRORS_LISTED])
        more = report.error_count - min(len(report.errors), ERRORS_LISTED)
        tail = f"\n... and {more:,} more (run `selftune data check {path}`)" if more > 0 else ""
        first = report.errors[0] if report.errors else None
        raise InvalidTrainingFile(f"{path} is not a valid {purpose} file:\n{shown}{tail}", path,
                                  first.line if first else None, first.field if first else None)
    data = TrainingData(path=path, purpose=purpose, sha256=_sha256(path))
    untrainable: list[int] = []
    for line, example in iter_examples(path, purpose):
        rendered = [_sequence(tokenizer, messages, tools, max_length)
                    for messages, tools in example.conversations()]
        if any(cut for _, cut in rendered):
            data.truncated += 1
        sequences = [seq for seq, _ in rendered]
        if any(not bool(seq.trained[1:].any()) for seq in sequences):
            untrainable.append(line)
            continue
        data.lines.append(line)
        if isinstance(example, ChatExample):
            data.sequences.append(sequences[0])
        elif isinstance(example, PreferenceExample):
            data.pairs.append(PreferencePair(*sequences))
    if untrainable:
        listed = ", ".join(str(n) for n in untrainable[:ERRORS_LISTED])
        more = f" and {len(untrainable) - ERRORS_LISTED:,} more" if len(untrainable) > ERRORS_LISTED else ""
        raise InvalidTrainingFile(
            f"{path}: {len(untrainable):,} example(s) have no token to train on after truncation to "
            f"{max_length:,} tokens (lines {listed}{more}): shorten their prompts or raise --max-length",
            path, untrainable[0])
    return data


def _sequence(tokenizer, messages: list[dict], tools: list[dict] | None, max_length: int) -> tuple[Sequence, bool]:
    rendered = render_for_training(tokenizer, messages, tools)
    ids, trained = rendered.input_ids, rendered.trained
    cut = len(ids) > max_length
    return Sequence.of(ids[:max_length], trained[:max_length]), cut


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
