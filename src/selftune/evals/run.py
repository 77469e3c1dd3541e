"""One evaluation: the held-out set through every model, graded, measured and reported."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import openai

from selftune.data.reader import same_file
from selftune.errors import SelftuneError
from selftune.evals.examples import EvalExample, load_examples
from selftune.evals.fewshot import FewShot, label_set
from selftune.evals.graders import GradingContext, make_grader
from selftune.evals.local_server import local_server
from selftune.evals.prices import DEFAULT_HOURLY_PRICE, TokenPrice, local_cost_per_thousand
from selftune.evals.runner import ModelRun, check_model, run_model
from selftune.evals.stats import bootstrap_ci, percentile
from selftune.models.content import text_of
from selftune.store.atomic import atomic_write

Progress = Callable[[str, int], Callable[[int], None]]  # (model, total) -> advance(n)


@dataclass
class EvalConfig:
    data: Path
    models: list[str]
    few_shot: int = 0  # K examples for the base models (models whose id does not start with ft:)
    few_shot_from: Path | None = None
    graders: list[str] = field(default_factory=list)  # empty: classification when the answers are labels
    base_url: str | None = None  # None: the local selftune server, started if needed
    api_key: str | None = None
    concurrency: int = 4
    limit: int | None = None
    seed: int = 0
    max_tokens: int | None = None  # None: from the longest reference
    out: Path = Path("eval-report")
    hourly_price: float = DEFAULT_HOURLY_PRICE
    prices: list[TokenPrice] = field(default_factory=list)
    judge_base_url: str | None = None

    def check(self) -> None:
        if not self.models:
            raise SelftuneError("name at least one --model")
        if self.few_shot and self.few_shot_from is None:
            raise SelftuneError("--few-shot needs --few-shot-from TRAIN.jsonl (examples never come from the test file)")
        if self.few_shot_from is not None and same_file(Path(self.few_shot_from), Path(self.data)):
            raise SelftuneError("--few-shot-from is the test file: few-shot examples must come from the training data")
        if self.concurrency < 1:
            raise SelftuneError("--concurrency must be at least 1")


def is_fine_tuned(model: str) -> bool:
    return model.startswith("ft:")


def evaluate(config: EvalConfig, progress: Progress | None = None) -> dict:
    """Run, grade and report; returns what ``report.json`` holds."""
    config.check()
    examples = load_examples(config.data, config.limit, config.seed)
    train = load_examples(config.few_shot_from) if config.few_shot_from else None
    few_shot = FewShot.build(train, config.few_shot, config.seed) if train and config.few_shot else None
    labels = label_set([e.reference for e in train]) if train else label_set([e.reference for e in examples])
    max_tokens = config.max_tokens or min(1024, max(16, max(len(e.reference) for e in examples) // 3 + 16))
    api_key = config.api_key or "local"
    with _endpoint(config, api_key) as url:
        client = openai.OpenAI(base_url=url, api_key=api_key, max_retries=3, timeout=600)
        judge_client = (openai.OpenAI(base_url=config.judge_base_url, api_key=api_key, max_retries=3)
                        if config.judge_base_url else None)
        context = GradingContext(labels=labels, client=client,
                                 options={"concurrency": config.concurrency, "judge_client": judge_client})
        graders = [make_grader(spec, context) for spec in config.graders or
                   (["classification"] if labels else ["normalized"])]
        for model in config.models:
            check_model(client, model)
        results, rows = [], []
        for model in config.models:
            shots = few_shot if few_shot is not None and not is_fine_tuned(model) else None
            prompts = [(shots.messages(e) if shots else e.messages, e.tools) for e in examples]
            run = run_model(client, model, prompts, max_tokens=max_tokens, concurrency=config.concurrency,
                            progress=progress(model, len(prompts)) if progress else None)
            result, model_rows = _grade(model, shots, examples, run, graders, config)
            results.append(result)
            rows += model_rows
    report = {"data": str(config.data), "examples": len(examples), "seed": config.seed, "endpoint": url,
              "max_tokens": max_tokens, "concurrency": config.concurrency, "few_shot": config.few_shot,
              "labels": labels,
              "graders": [g.label for g in graders], "hourly_price": config.hourly_price,
              "prices": [p.__dict__ for p in config.prices], "models": results,
              "comparisons": _comparisons(results)}
    _write(config.out, report, rows)
    return report


@contextlib.contextmanager
def _endpoint(config: EvalConfig, api_key: str):
    if config.base_url:
        yield config.base_url
    else:
        with local_server(Path(config.out) / "server.log", api_key) as url:
            yield url


def _grade(model: str, shots: FewShot | None, examples: list[EvalExample], run: ModelRun, graders,
           config: EvalConfig) -> tuple[dict, list[dict]]:
    answers = [a.text for a in run.answers]
    references = [e.reference for e in examples]
    quality, scores_by_grader = {}, {}
    for grader in graders:
        scores = grader.score_all(answers, references)
        scores = [0.0 if a.error else s for a, s in zip(run.answers, scores, strict=True)]
        low, high = bootstrap_ci(scores, seed=config.seed)
        quality[grader.label] = {"mean": sum(scores) / len(scores), "ci95": [low, high],
                                 **grader.summary(answers, references, scores)}
        scores_by_grader[grader.label] = scores
    ok = run.ok or run.answers
    n = len(run.answers)
    prompt_tokens = sum(a.prompt_tokens for a in ok) / len(ok)
    completion_tokens = sum(a.completion_tokens for a in ok) / len(ok)
    latencies = [a.latency_s for a in ok]
    seconds_per_request = run.wall_s / n
    result = {
        "model": model,
        "kind": "fine-tuned" if is_fine_tuned(model) else (f"base, {len(shots.shots)}-shot" if shots else "base"),
        "requests": n, "errors": sum(a.error is not None for a in run.answers),
        "quality": quality,
        "prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
        "latency_s": {"p50": percentile(latencies, 50), "p95": percentile(latencies, 95),
                      "mean": sum(latencies) / len(latencies), "all": latencies},
        "wall_s": run.wall_s, "requests_per_s": n / run.wall_s if run.wall_s else None,
        "cost_per_1000": {"local": local_cost_per_thousand(seconds_per_request, config.hourly_price),
                          **{p.name: p.per_thousand_requests(prompt_tokens, completion_tokens)
                             for p in config.prices}},
    }
    rows = [{"model": model, "line": e.line, "prompt": text_of(e.without_system()[-1].get("content"))
             if e.without_system() else None, "reference": e.reference, "answer": a.text,
             "scores": {label: scores[i] for label, scores in scores_by_grader.items()},
             "prompt_tokens": a.prompt_tokens, "completion_tokens": a.completion_tokens,
             "latency_s": a.latency_s, "error": a.error}
            for i, (e, a) in enumerate(zip(examples, run.answers, strict=True))]
    return result, rows


def _comparisons(results: list[dict]) -> list[dict]:
    """What each fine-tuned model bought against each base model: quality gained, and how many
    times fewer prompt tokens, less latency and less cost it needed."""
    out = []
    for tuned in (r for r in results if r["kind"] == "fine-tuned"):
        for base in (r for r in results if r["kind"] != "fine-tuned"):
            grader = next(iter(tuned["quality"]))
            out.append({
                "fine_tuned": tuned["model"], "base": base["model"], "base_kind": base["kind"], "grader": grader,
                "quality_gain": tuned["quality"][grader]["mean"] - base["quality"][grader]["mean"],
                "prompt_tokens_ratio": _ratio(base["prompt_tokens"], tuned["prompt_tokens"]),
                "latency_p50_ratio": _ratio(base["latency_s"]["p50"], tuned["latency_s"]["p50"]),
                "local_cost_ratio": _ratio(base["cost_per_1000"]["local"], tuned["cost_per_1000"]["local"]),
            })
    return out


def _ratio(a: float, b: float) -> float:
    return a / b if b else None


def _write(out: Path, report: dict, rows: list[dict]) -> None:
    from selftune.evals.report import write_html

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    with atomic_write(out / "results.jsonl") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
    with atomic_write(out / "report.json") as f:
        json.dump(report, f, indent=1, ensure_ascii=False)
    write_html(report, rows, out / "report.html")
