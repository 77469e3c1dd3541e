"""One evaluation: the held-out set through every model, graded, measured and reported."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Iterator
from pathlib import Path

import openai

from selftune.evals.agreement import agreement
from selftune.evals.config import EvalConfig, ModelEndpoint
from selftune.evals.examples import EvalExample, load_examples
from selftune.evals.fewshot import FewShot, label_set
from selftune.evals.graders import Grader, GradingContext, make_grader
from selftune.evals.graders.json_fields import are_objects
from selftune.evals.local_server import local_server
from selftune.evals.prices import local_cost_per_thousand
from selftune.evals.requests import ChatRequest
from selftune.evals.results import (
    FINE_TUNED,
    LOCAL_COST,
    NOT_MEASURED,
    Agreement,
    Comparison,
    EvalReport,
    ExampleResult,
    Latency,
    ModelResult,
    Quality,
    run_name,
)
from selftune.evals.runner import ModelRun, check_model, run_model
from selftune.evals.schema import response_format
from selftune.evals.stats import bootstrap_ci, percentile
from selftune.models.content import text_of
from selftune.store.atomic import atomic_write

Progress = Callable[[str, int], Callable[[int], None]]  # (model, total) -> advance(n)
LOCAL_API_KEY = "local"  # what a local-mode selftune server accepts (any key works there)


def is_fine_tuned(model: str) -> bool:
    return model.startswith("ft:")


class Clients:
    """One OpenAI client per (endpoint, key), so models that share an endpoint share its connections."""

    def __init__(self) -> None:
        self._clients: dict[tuple[str, str], openai.OpenAI] = {}

    def get(self, base_url: str, api_key: str) -> openai.OpenAI:
        if (base_url, api_key) not in self._clients:
            self._clients[base_url, api_key] = openai.OpenAI(base_url=base_url, api_key=api_key, max_retries=3,
                                                             timeout=600)
        return self._clients[base_url, api_key]


def evaluate(config: EvalConfig, progress: Progress | None = None) -> EvalReport:
    """Run, grade and report; returns what ``report.json`` holds (``results.jsonl`` and ``report.html``
    are written beside it). Each model's requests go to its own endpoint, or else to the run's."""
    examples = load_examples(config.data, config.limit, config.seed)
    train = load_examples(config.few_shot_from) if config.few_shot_from else None
    few_shot = FewShot.build(train, config.few_shot, config.seed) if train and config.few_shot else None
    labels = label_set([e.reference for e in train]) if train else label_set([e.reference for e in examples])
    structured = response_format(config.schema_file) if config.schema_file else None
    max_tokens = config.max_tokens or min(1024, max(16, max(len(e.reference) for e in examples) // 3 + 16))
    api_key = config.api_key or LOCAL_API_KEY
    clients = Clients()
    with _run_endpoint(config, api_key) as url:
        run_client = clients.get(url, api_key) if url else None
        judge_client = (openai.OpenAI(base_url=config.judge_base_url, api_key=api_key, max_retries=3)
                        if config.judge_base_url else None)
        context = GradingContext(labels=labels, client=run_client, judge_client=judge_client,
                                 concurrency=config.concurrency, batch=config.batch, seed=config.seed)
        graders = [make_grader(spec, context) for spec in config.graders or _default_graders(labels, examples,
                                                                                              structured)]
        endpoints = [(m, m.base_url or url, m.api_key or api_key) for m in config.models]
        for spec, model_url, key in endpoints:
            check_model(clients.get(model_url, key), spec.model)
        results, rows, answers = [], [], {}
        for spec, model_url, key in endpoints:
            model = spec.model
            shots = few_shot if few_shot is not None and not is_fine_tuned(model) else None
            kind = FINE_TUNED if is_fine_tuned(model) else (f"base, {len(shots.shots)}-shot" if shots else "base")
            for constrained in (False, True) if structured else (False,):
                name = run_name(model, constrained)
                requests = [ChatRequest(shots.messages(e) if shots else e.messages, e.tools,
                                        response_format=structured if constrained else None) for e in examples]
                run = run_model(clients.get(model_url, key), model, requests, max_tokens=max_tokens,
                                concurrency=config.concurrency, batch=config.batch,
                                progress=progress(name, len(requests)) if progress else None)
                result, model_rows = _grade(spec, kind, constrained, model_url, examples, run, graders, config)
                results.append(result)
                rows += model_rows
                answers[name] = [a.text.strip() for a in run.answers]
    report = EvalReport(data=str(config.data), examples=len(examples), seed=config.seed, endpoint=url,
                        max_tokens=max_tokens, concurrency=config.concurrency, batch=config.batch,
                        few_shot=config.few_shot,
                        schema_file=str(config.schema_file) if config.schema_file else None,
                        labels=labels, graders=[g.label for g in graders], hourly_price=config.hourly_price,
                        prices=config.prices, models=results, comparisons=_comparisons(results),
                        agreements=_agreements(answers, config.agreement_with))
    _write(config.out, report, rows)
    return report


def _default_graders(labels: list[str] | None, examples: list[EvalExample], structured: dict | None) -> list[str]:
    """Labels are a classification; JSON-object answers (or a schema to decode under) an extraction."""
    if labels:
        return ["classification"]
    if structured or are_objects([e.reference for e in examples]):
        return ["json"]
    return ["normalized"]


@contextlib.contextmanager
def _run_endpoint(config: EvalConfig, api_key: str) -> Iterator[str | None]:
    """The run's base URL: the one given, else the local selftune server (started if none is
    listening), or None when every model (and the judge) has an endpoint of its own."""
    if config.base_url:
        yield config.base_url
    elif not config.needs_run_endpoint:
        yield None
    else:
        with local_server(Path(config.out) / "server.log", api_key) as url:
            yield url


def _grade(spec: ModelEndpoint, kind: str, constrained: bool, endpoint: str, examples: list[EvalExample], run: ModelRun,
           graders: list[Grader], config: EvalConfig) -> tuple[ModelResult, list[ExampleResult]]:
    model = spec.model
    answers = [a.text.strip() for a in run.answers]
    references = [e.reference for e in examples]
    quality, scores_by_grader = {}, {}
    for grader in graders:
        scores = grader.score_all(answers, references)
        scores = [0.0 if a.failed else s for a, s in zip(run.answers, scores, strict=True)]
        low, high = bootstrap_ci(scores, seed=config.seed)
        quality[grader.label] = Quality(mean=sum(scores) / len(scores), ci95=(low, high),
                                        **grader.summary(answers, references, scores))
        scores_by_grader[grader.label] = scores
    ok = run.ok or run.answers
    n = len(run.answers)
    prompt_tokens = sum(a.prompt_tokens for a in ok) / len(ok)
    completion_tokens = sum(a.completion_tokens for a in ok) / len(ok)
    latencies = [a.latency_s for a in ok if a.latency_s is not None]  # none in a batch
    result = ModelResult(
        model=model, kind=kind, constrained=constrained, endpoint=endpoint, requests=n, errors=n - len(run.ok),
        quality=quality,
        prompt_tokens=prompt_tokens, completion_tokens=completion_tokens,
        latency_s=Latency(p50=percentile(latencies, 50), p95=percentile(latencies, 95),
                          mean=sum(latencies) / len(latencies), all=latencies) if latencies else NOT_MEASURED,
        wall_s=run.wall_s, requests_per_s=n / run.wall_s if run.wall_s else None,
        cost_per_1000={
            spec.price.name if spec.price else LOCAL_COST:
                spec.price.per_thousand_requests(prompt_tokens, completion_tokens) if spec.price
                else local_cost_per_thousand(run.wall_s / n, config.hourly_price),
            **{p.name: p.per_thousand_requests(prompt_tokens, completion_tokens) for p in config.prices}},
        cost_basis=spec.price.name if spec.price else LOCAL_COST)
    rows = [ExampleResult(model=model, line=e.line, prompt=text_of(e.without_system()[-1].get("content"))
                          if e.without_system() else None, reference=e.reference, answer=answer,
                          scores={label: scores[i] for label, scores in scores_by_grader.items()},
                          prompt_tokens=a.prompt_tokens, completion_tokens=a.completion_tokens,
                          latency_s=a.latency_s, error=a.error, constrained=constrained)
            for i, (e, a, answer) in enumerate(zip(examples, run.answers, answers, strict=True))]
    return result, rows


def _comparisons(results: list[ModelResult]) -> list[Comparison]:
    """Each fine-tuned model against each base model, on the first grader."""
    out = []
    for tuned in (r for r in results if r.fine_tuned):
        for base in (r for r in results if not r.fine_tuned):
            grader = next(iter(tuned.quality))
            out.append(Comparison(
                fine_tuned=tuned.name, base=base.name, base_kind=base.kind, grader=grader,
                quality_gain=tuned.quality[grader].mean - base.quality[grader].mean,
                prompt_tokens_ratio=_ratio(base.prompt_tokens, tuned.prompt_tokens),
                latency_p50_ratio=_ratio(base.latency_s.p50, tuned.latency_s.p50),
                local_cost_ratio=_ratio(base.own_cost, tuned.own_cost)))
    return out


def _agreements(answers: dict[str, list[str]], with_model: str | None) -> list[Agreement]:
    """Each row's agreement with ``with_model``'s answers (its unconstrained row), example by example."""
    if with_model is None:
        return []
    out = []
    for model, mine in answers.items():
        if model != with_model:
            share, ci95 = agreement(mine, answers[with_model])
            out.append(Agreement(model=model, with_model=with_model, share=share, ci95=ci95))
    return out


def _ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


def _write(out: Path, report: EvalReport, rows: list[ExampleResult]) -> None:
    from selftune.evals.report import write_html

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    with atomic_write(out / "results.jsonl") as f:
        for row in rows:
            f.write(json.dumps(row.model_dump(), ensure_ascii=False) + "\n")
    with atomic_write(out / "report.json") as f:  # json, not pydantic: an empty model's NaN stays NaN
        json.dump(report.model_dump(), f, indent=1, ensure_ascii=False)
    write_html(report, rows, out / "report.html")
