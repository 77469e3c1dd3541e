"""Distillation runs: prompts through a teacher (concurrently, retried, cached), answers filtered and
optionally chosen best-of-K by a grader, written as a training file that passes ``data check``."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import openai

from selftune.data.check import check
from selftune.distill.answers import Answer, drop_duplicates, rejection
from selftune.distill.cache import AnswerCache, request_key
from selftune.distill.config import DistillConfig, StoredDistillConfig
from selftune.distill.prompts import Prompt, read_prompts
from selftune.distill.results import DistillSummary, TokenCounts
from selftune.errors import SelftuneError
from selftune.evals.batched import send_all
from selftune.evals.graders import Grader, GradingContext, make_grader
from selftune.evals.prices import TokenPrice
from selftune.evals.requests import ChatRequest, Reply
from selftune.store.atomic import atomic_write

Progress = Callable[[int], Callable[[int], None]]  # (total) -> advance(n)
TEACHER_ERROR = "teacher_error"  # a prompt none of whose requests got an answer, even after retries


@dataclass
class Collected:
    """Examples gathered for a training file, before it is written: what was kept, what was dropped
    and why, and what it cost (capture merges one from stored completions with one from prompts)."""

    examples: list[dict]
    drops: Counter
    prompts: int  # prompts (or stored completions) looked at
    paid: list[Reply] = field(default_factory=list)  # requests this run sent
    reused: int = 0  # answers taken from the cache instead

    def __add__(self, other: Collected) -> Collected:
        return Collected(self.examples + other.examples, self.drops + other.drops, self.prompts + other.prompts,
                         self.paid + other.paid, self.reused + other.reused)


def distill(config: DistillConfig, progress: Progress | None = None) -> DistillSummary:
    """Ask, filter, write; returns the summary (also written beside the output)."""
    return write_training_file(Path(config.out), collect_from_teacher(config, progress), config.prices)


def collect_from_teacher(config: DistillConfig, progress: Progress | None = None) -> Collected:
    """The teacher's kept answer to each prompt (asked concurrently, cached as they arrive)."""
    drops: Counter = Counter()
    prompts = read_prompts(config.prompts, config.system)
    unique = drop_duplicates(prompts, drops, "duplicate_prompt", key=lambda p: [p.messages, p.tools])
    client = openai.OpenAI(base_url=config.teacher_base_url, api_key=config.api_key or "none",
                           max_retries=config.max_retries, timeout=config.timeout)
    context = GradingContext(client=client, concurrency=config.concurrency, batch=config.batch)
    graders = [make_grader(spec, context) for spec in config.graders]  # a bad spec fails before paying
    grader = graders[0] if graders else None  # best-of-K and --min-score go by the first
    cache = AnswerCache(config.cache_path)
    try:
        answers, paid = _ask(client, config, unique, cache, progress)
    finally:
        cache.close()
    examples = []
    for prompt, candidates in zip(unique, answers, strict=True):
        kept, reason = _choose(prompt, candidates, grader, config)
        if kept is None:
            drops[reason] += 1
        else:
            examples.append({"messages": [*prompt.messages, {"role": "assistant", "content": kept}],
                             **({"tools": prompt.tools} if prompt.tools else {})})
    reused = sum(len(a) for a in answers) - len(paid)
    return Collected(examples, drops, len(prompts), paid, reused)


def _ask(client: openai.OpenAI, config: DistillConfig, prompts: list[Prompt], cache: AnswerCache,
         progress: Progress | None) -> tuple[list[list[Answer | None]], list[Reply]]:
    """Every prompt's K answers (None where the teacher failed) from the cache, or from the teacher,
    and the replies this run paid for. An answer is cached as it arrives; a failed request (after the
    client's retries) is not, so the next run asks again."""
    settings = {"temperature": config.sampling_temperature, "max_tokens": config.max_tokens}
    jobs = [(i, k, request_key(config.teacher_model, p.messages, p.tools, settings, k))
            for i, p in enumerate(prompts) for k in range(config.samples)]
    missing = [job for job in jobs if cache.get(job[2]) is None]
    advance = progress(len(jobs)) if progress else None
    if advance:
        advance(len(jobs) - len(missing))

    def keep(index: int, reply: Reply) -> None:
        if not reply.failed:
            cache.put(missing[index][2], _answer(reply))

    requests = [ChatRequest(prompts[i].messages, prompts[i].tools, seed=k) for i, k, _ in missing]
    paid = send_all(client, config.teacher_model, requests, settings, batch=config.batch,
                    concurrency=config.concurrency, metadata={"selftune": "distill"}, progress=advance, on_reply=keep)
    answers: list[list[Answer | None]] = [[] for _ in prompts]
    for i, _, key in jobs:
        answers[i].append(cache.get(key))
    return answers, paid


def _answer(reply: Reply) -> Answer:
    return Answer(answer=reply.text, refusal=reply.refusal, finish_reason=reply.finish_reason,
                  tool_calls=reply.tool_calls, prompt_tokens=reply.prompt_tokens,
                  completion_tokens=reply.completion_tokens)


def _choose(prompt: Prompt, candidates: list[Answer | None], grader: Grader | None,
            config: DistillConfig) -> tuple[str | None, str]:
    """The answer to keep, or None and why none is."""
    usable, reasons = [], Counter()
    for candidate in candidates:
        reason = TEACHER_ERROR if candidate is None else rejection(candidate, config.keep_truncated)
        if reason:
            reasons[reason] += 1
        else:
            usable.append(candidate.answer.strip())
    if not usable:
        return None, reasons.most_common(1)[0][0]
    if grader is None:
        return usable[0], ""
    scores = grader.score_all(usable, [prompt.reference] * len(usable))
    best = max(range(len(usable)), key=lambda j: scores[j])
    if config.min_score is not None and scores[best] < config.min_score:
        return None, "below_min_score"
    return usable[best], ""


def write_training_file(out: Path, collected: Collected, prices: list[TokenPrice]) -> DistillSummary:
    """The training file (duplicates dropped), checked as strictly as an upload, and its summary."""
    drops, paid = Counter(collected.drops), collected.paid
    unique = drop_duplicates(collected.examples, drops, "duplicate")
    if not unique:
        raise SelftuneError(f"no answer was kept ({dict(drops)}); nothing written to {out}")
    with atomic_write(out) as f:
        for example in unique:
            f.write(json.dumps(example, ensure_ascii=False) + "\n")
    report = check(out)
    broken = [e for e in report.errors if e.line is not None]
    if broken:  # a line selftune wrote is invalid: a bug, never a file to train on
        raise SelftuneError(f"{out} does not pass `selftune data check`: {broken[0].format(str(out))}")
    tokens = TokenCounts(prompt=sum(r.prompt_tokens for r in paid), completion=sum(r.completion_tokens for r in paid))
    summary = DistillSummary(
        out=str(out), prompts=collected.prompts, kept=len(unique), dropped=dict(sorted(drops.items())),
        requests_this_run=len(paid), failed_requests_this_run=sum(r.failed for r in paid),
        answers_reused_from_cache=collected.reused, teacher_tokens_this_run=tokens,
        teacher_cost_this_run={p.name: p.cost(tokens.prompt, tokens.completion) for p in prices},
        # file-level problems (too few examples for a job) are the data's size, not its lines
        check=[e.format(str(out)) for e in report.errors])
    with atomic_write(out.with_suffix(".summary.json")) as f:
        json.dump(summary.model_dump(), f, indent=1)
    return summary


def from_stored(config: StoredDistillConfig) -> DistillSummary:
    """A training file from completions stored with ``store: true`` (filtered by metadata and model):
    each stored request's messages and the answer it got."""
    return write_training_file(Path(config.out), collect_from_stored(config), [])


def collect_from_stored(config: StoredDistillConfig) -> Collected:
    """Each stored completion's request messages and the answer it got, paged through the API."""
    client = openai.OpenAI(base_url=config.base_url, api_key=config.api_key or "none", max_retries=3)
    drops: Counter = Counter()
    examples = []
    listing = client.chat.completions.list(metadata=config.metadata or openai.NOT_GIVEN,
                                           model=config.model or openai.NOT_GIVEN, limit=100)
    for stored in listing:
        messages = [{"role": m.role, "content": m.content}
                    for m in client.chat.completions.messages.list(stored.id, limit=100)]
        choice = stored.choices[0]
        answer = Answer(answer=choice.message.content or "", refusal=choice.message.refusal,
                        finish_reason=choice.finish_reason, tool_calls=bool(choice.message.tool_calls))
        reason = rejection(answer, config.keep_truncated)
        if reason:
            drops[reason] += 1
        else:
            examples.append({"messages": [*messages, {"role": "assistant", "content": answer.answer.strip()}]})
    return Collected(examples, drops, len(examples) + sum(drops.values()))
