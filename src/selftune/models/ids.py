"""The fine-tuned model id grammar, as the hosted service writes it: ``ft:BASE:ORG:SUFFIX:JOBID``.

A checkpoint of a job is a model too: ``ft:BASE:ORG:SUFFIX:JOBID:ckpt-step-N``. ``SUFFIX`` may be
empty (``ft:BASE:ORG::JOBID``). No part may contain ``:``, so the id splits back unambiguously.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

SUFFIX_PATTERN = re.compile(r"^[A-Za-z0-9_.-]{0,64}$")
_CHECKPOINT = re.compile(r"^ckpt-step-(\d+)$")


@dataclass(frozen=True)
class FineTunedId:
    base: str
    org: str
    suffix: str
    job: str
    step: int | None = None  # a checkpoint's step

    def __str__(self) -> str:
        text = f"ft:{self.base}:{self.org}:{self.suffix}:{self.job}"
        return text if self.step is None else f"{text}:ckpt-step-{self.step}"

    def at_step(self, step: int) -> FineTunedId:
        return FineTunedId(self.base, self.org, self.suffix, self.job, step)


def fine_tuned_id(base: str, org: str, suffix: str | None, job_id: str) -> FineTunedId:
    """The id of a job's model; the job part is the job id without its ``ftjob-`` prefix."""
    for name, part in (("base model", base), ("organisation", org), ("suffix", suffix or "")):
        if ":" in part:
            raise ValueError(f"{name} {part!r} contains ':', which separates the parts of a model id")
    return FineTunedId(base, org, suffix or "", job_id.removeprefix("ftjob-"))


def parse_fine_tuned_id(model_id: str) -> FineTunedId | None:
    """Split an ``ft:`` id into its parts; None when ``model_id`` is not one."""
    parts = model_id.split(":")
    if parts[0] != "ft" or len(parts) not in (5, 6) or not all(parts[i] for i in (1, 2, 4)):
        return None
    step = None
    if len(parts) == 6:
        match = _CHECKPOINT.match(parts[5])
        if not match:
            return None
        step = int(match.group(1))
    return FineTunedId(parts[1], parts[2], parts[3], parts[4], step)


def base_model_of(model_id: str) -> str:
    """The base model under ``model_id``: itself for a base model, BASE for an ``ft:`` id. A job that fine-tunes
    a fine-tuned model trains on that same base, and its own model id names the base (as the hosted one's)."""
    parsed = parse_fine_tuned_id(model_id)
    return parsed.base if parsed else model_id
