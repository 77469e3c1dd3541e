"""A training file from a hosted fine-tuned model's behaviour, while it still answers: its stored
completions (the production traffic kept with ``store: true``) and/or its answers to a prompts file.

Both are the distillation machinery with the hosted model as the teacher: the stored list is paged
with its metadata and model filters; prompts are sent concurrently with the SDK's retries and
backoff on 429/5xx and cached on disk as each answer arrives, so a killed capture resumes without
paying twice. When both sources are used, a prompt that is in the stored traffic keeps its stored
answer (what production actually got) and is not taken again from the prompts' answers.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from selftune.distill.answers import drop_duplicates
from selftune.distill.config import DistillConfig, StoredDistillConfig
from selftune.distill.results import DistillSummary
from selftune.distill.run import Collected, Progress, collect_from_stored, collect_from_teacher, write_training_file
from selftune.errors import SelftuneError
from selftune.migrate.config import CaptureConfig
from selftune.migrate.plan import load_plan, save_plan


def capture(config: CaptureConfig, progress: Progress | None = None) -> DistillSummary:
    """Collect, merge, write and check the file; record it in the plan when one is given."""
    plan = load_plan(config.plan) if config.plan else None
    if plan is not None and not plan.jobs_of_model(config.model):
        raise SelftuneError(f"{config.plan}: no job of the plan made {config.model}; "
                            f"its models: {', '.join(j.fine_tuned_model for j in plan.jobs if j.fine_tuned_model)}")
    collected = Collected([], Counter(), 0)
    if config.from_stored:
        collected += collect_from_stored(StoredDistillConfig(
            out=config.out, base_url=config.base_url, api_key=config.api_key, metadata=config.metadata,
            model=config.model, keep_truncated=config.keep_truncated))
    if config.prompts is not None:
        asked = collect_from_teacher(DistillConfig(
            teacher_base_url=config.base_url, teacher_model=config.model, prompts=config.prompts, out=config.out,
            api_key=config.api_key, system=config.system, concurrency=config.concurrency,
            max_tokens=config.max_tokens, keep_truncated=config.keep_truncated,
            cache=Path(config.out).with_suffix(".prompts.cache.jsonl")), progress)
        collected += asked
    # a prompt seen in the stored traffic keeps its stored answer (stored examples come first)
    collected.examples = drop_duplicates(collected.examples, collected.drops, "duplicate_prompt",
                                         key=lambda e: [e["messages"][:-1], e.get("tools")])
    summary = write_training_file(Path(config.out), collected, [])
    if plan is not None:
        for job in plan.jobs_of_model(config.model):
            job.captured_file = str(Path(config.out).resolve())
        save_plan(plan, config.plan)
    return summary
