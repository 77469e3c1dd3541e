"""Distillation runs: prompts through a teacher (concurrently, retried, cached), answers filtered and
optionally chosen best-of-K by a grader, written as a training file that passes ``data check``."""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import openai

from selftune.data.check import check
from selftune.distill.cache import AnswerCache, request_key
from selftune.distill.prompts import Prompt, read_prompts
from selftune.errors import SelftuneError
from selftune.evals.graders import GradingContext, make_grader
from selftune.evals.prices import TokenPrice
from selftune.store.atomic import atomic_write

# answers that decline the task teach the student to decline: dropped (the hosted API marks some
# with message.refusal; the rest are recognised by how they open)
REFUSAL = re.compile(r"^\s*(I'm sorry|I am sorry|I apologi[sz]e|I cannot|I can't|I can not|I won't|I am unable|"
                     r"I'm unable|As an AI)\b", re.IGNORECASE)


@dataclass
class DistillConfig:
    teacher_base_url: str
    teacher_model: str
    prompts: Path
    out: Path
    api_key: str | None = None
    system: str | None = None  # added to prompts that have no system message
    samples: int = 1  # K answers per prompt; the grader keeps the best
    temperature: float | None = None  # default: 0 for one sample, 0.7 for several
    max_tokens: int = 1024
    graders: list[str] = field(default_factory=list)
    min_score: float | None = None
    keep_truncated: bool = False  # answers cut by max_tokens are dropped unless asked for
    concurrency: int = 4
    timeout: float = 120.0  # seconds per request
    max_retries: int = 5  # on 429, 5xx and connection errors, with exponential backoff (the openai SDK's)
    cache: Path | None = None  # default: OUT with .cache.jsonl
    prices: list[TokenPrice] = field(default_factory=list)

    @property
    def cache_path(self) -> Path:
        return Path(self.cache) if self.cache else Path(self.out).with_suffix(".cache.jsonl")


Progress = Callable[[int], Callable[[int], None]]  # (total) -> advance(n)


def distill(config: DistillConfig, progress: Progress | None = None) -> dict:
    """Ask, filter, write; returns the summary (also written beside the output)."""
    if config.samples < 1 or config.concurrency < 1:
        raise SelftuneError("--samples and --concurrency must be at least 1")
    if config.min_score is not None and not config.graders:
        raise SelftuneError("--min-score needs a --grader to score answers with")
    prompts = read_prompts(config.prompts, config.system)
    drops: Counter = Counter()
    unique, seen = [], set()
    for prompt in prompts:
        key = json.dumps([prompt.messages, prompt.tools], sort_keys=True)
        if key in seen:
            drops["duplicate_prompt"] += 1
            continue
        seen.add(key)
        unique.append(prompt)
    client = openai.OpenAI(base_url=config.teacher_base_url, api_key=config.api_key or "none",
                           max_retries=config.max_retries, timeout=config.timeout)
    temperature = config.temperature if config.temperature is not None else (0.0 if config.samples == 1 else 0.7)
    settings = {"temperature": temperature, "max_tokens": config.max_tokens}
    cache = AnswerCache(config.cache_path)
    try:
        answers, paid = _ask(client, config, unique, settings, cache, progress)
    finally:
        cache.close()
    graders = [make_grader(spec, GradingContext(client=client)) for spec in config.graders]
    examples = []
    for prompt, candidates in zip(unique, answers, strict=True):
        kept, reason = _choose(prompt, candidates, graders[0] if graders else None, config.min_score,
                               config.keep_truncated)
        if kept is None:
            drops[reason] += 1
        else:
            examples.append({"messages": [*prompt.messages, {"role": "assistant", "content": kept}],
                             **({"tools": prompt.tools} if prompt.tools else {})})
    reused = sum(len(a) for a in answers) - len(paid)
    return _write(Path(config.out), examples, drops, len(prompts), paid, reused, config.prices)


def _ask(client, config: DistillConfig, prompts: list[Prompt], settings: dict, cache: AnswerCache,
         progress: Progress | None) -> tuple[list[list[dict]], list[dict]]:
    """Every prompt's K answers: from the cache, or from the teacher (concurrently). Failed requests
    (after the client's retries) are not cached, so the next run asks again."""
    jobs = [(i, k, request_key(config.teacher_model, p.messages, p.tools, settings, k))
            for i, p in enumerate(prompts) for k in range(config.samples)]
    missing = [job for job in jobs if cache.get(job[2]) is None]
    advance = progress(len(jobs)) if progress else None
    if advance:
        advance(len(jobs) - len(missing))
    paid: list[dict] = []

    def one(job) -> None:
        i, k, key = job
        prompt = prompts[i]
        extra = {"tools": prompt.tools} if prompt.tools else {}
        try:
            response = client.chat.completions.create(model=config.teacher_model, messages=prompt.messages,
                                                      seed=k, **settings, **extra)
        except openai.APIError as exc:
            paid.append({"error": f"{type(exc).__name__}: {exc}"})
        else:
            choice = response.choices[0]
            usage = response.usage
            entry = {"answer": choice.message.content or "", "refusal": getattr(choice.message, "refusal", None),
                     "finish_reason": choice.finish_reason,
                     "prompt_tokens": usage.prompt_tokens if usage else 0,
                     "completion_tokens": usage.completion_tokens if usage else 0}
            cache.put(key, entry)
            paid.append(entry)
        finally:
            if advance:
                advance(1)

    with ThreadPoolExecutor(max_workers=config.concurrency) as pool:
        list(pool.map(one, missing))
    answers: list[list[dict]] = [[] for _ in prompts]
    for i, _, key in jobs:
        answers[i].append(cache.get(key) or {"error": "no answer"})
    return answers, paid


def _choose(prompt: Prompt, candidates: list[dict], grader, min_score: float | None,
            keep_truncated: bool) -> tuple[str | None, str]:
    """The answer to keep, or None and why none is."""
    usable, reasons = [], Counter()
    for candidate in candidates:
        text = (candidate.get("answer") or "").strip()
        if "error" in candidate:
            reasons["teacher_error"] += 1
        elif candidate.get("refusal") or REFUSAL.match(text):
            reasons["refused"] += 1
        elif not text:
            reasons["empty"] += 1
        elif candidate.get("finish_reason") == "length" and not keep_truncated:
            reasons["truncated"] += 1
        else:
            usable.append(text)
    if not usable:
        return None, reasons.most_common(1)[0][0]
    if grader is None:
        return usable[0], ""
    scores = grader.score_all(usable, [prompt.reference] * len(usable))
    best = max(range(len(usable)), key=lambda j: scores[j])
    if min_score is not None and scores[best] < min_score:
        return None, "below_min_score"
    return usable[best], ""


def _write(out: Path, examples: list[dict], drops: Counter, n_prompts: int, paid: list[dict], reused: int,
           prices: list[TokenPrice]) -> dict:
    """The training file (duplicates dropped), checked as strictly as an upload, and its summary."""
    unique, seen = [], set()
    for example in examples:
        key = json.dumps(example, sort_keys=True)
        if key in seen:
            drops["duplicate"] += 1
            continue
        seen.add(key)
        unique.append(example)
    if not unique:
        raise SelftuneError(f"no answer was kept ({dict(drops)}); nothing written to {out}")
    with atomic_write(out) as f:
        for example in unique:
            f.write(json.dumps(example, ensure_ascii=False) + "\n")
    report = check(out)
    broken = [e for e in report.errors if e.line is not None]
    if broken:  # a line selftune wrote is invalid: a bug, never a file to train on
        raise SelftuneError(f"{out} does not pass `selftune data check`: {broken[0].format(str(out))}")
    cost = {}
    tokens_in = sum(e.get("prompt_tokens", 0) for e in paid)
    tokens_out = sum(e.get("completion_tokens", 0) for e in paid)
    for price in prices:
        cost[price.name] = (tokens_in * price.input_per_million + tokens_out * price.output_per_million) / 1e6
    summary = {"out": str(out), "prompts": n_prompts, "kept": len(unique), "dropped": dict(sorted(drops.items())),
               "requests_this_run": len(paid), "failed_requests_this_run": sum("error" in e for e in paid),
               "answers_reused_from_cache": reused,
               "teacher_tokens_this_run": {"prompt": tokens_in, "completion": tokens_out},
               "teacher_cost_this_run": cost,
               # file-level problems (too few examples for a job) are the data's size, not its lines
               "check": [e.format(str(out)) for e in report.errors]}
    with atomic_write(out.with_suffix(".summary.json")) as f:
        json.dump(summary, f, indent=1)
    return summary


def from_stored(base_url: str, api_key: str | None, out: Path, metadata: dict[str, str],
                model: str | None = None, keep_truncated: bool = False) -> dict:
    """A training file from completions stored with ``store: true`` (filtered by metadata and model):
    each stored request's messages and the answer it got."""
    client = openai.OpenAI(base_url=base_url, api_key=api_key or "none", max_retries=3)
    drops: Counter = Counter()
    examples = []
    listing = client.chat.completions.list(metadata=metadata or openai.NOT_GIVEN, model=model or openai.NOT_GIVEN,
                                           limit=100)
    for stored in listing:
        messages = [{"role": m.role, "content": m.content}
                    for m in client.chat.completions.messages.list(stored.id, limit=100)]
        message = stored.choices[0].message
        text = (message.content or "").strip()
        if message.refusal or REFUSAL.match(text):
            drops["refused"] += 1
        elif message.tool_calls:
            drops["tool_calls"] += 1  # kept out: a call without its result teaches half a turn
        elif not text:
            drops["empty"] += 1
        elif stored.choices[0].finish_reason == "length" and not keep_truncated:
            drops["truncated"] += 1
        else:
            examples.append({"messages": [*messages, {"role": "assistant", "content": text}]})
    n = len(examples) + sum(drops.values())
    return _write(Path(out), examples, drops, n, [], 0, [])
