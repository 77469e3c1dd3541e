"""The distillation demo of docs/distillation.md: a teacher served by selftune labels unlabelled
Banking77 messages, a student is fine-tuned on its answers through the API, and ``selftune eval``
compares teacher, student and the 10-shot base.

The teacher is the newest fine-tuned ``banking77`` model on the server (``make demo`` makes one).
Run it after ``make demo``, with the machine otherwise idle:

    .venv/bin/python bench/distill_demo.py [--prompts 1000] [--test-sample 200]
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path

import openai
from rich.console import Console

from selftune.config import get_settings
from selftune.demo import BASE_MODEL, FEW_SHOT, SYSTEM_PROMPT, banking77_dir
from selftune.distill import DistillConfig, distill
from selftune.evals import EvalConfig, evaluate
from selftune.evals.local_server import local_server
from selftune.evals.report import print_summary
from selftune.hardware import describe

console = Console(highlight=False)


def unlabelled_messages(data: Path, count: int, out: Path) -> Path:
    """Messages of train.jsonl that are not in train_1k.jsonl, without their labels, one a line."""
    def messages(name: str) -> list[str]:
        return [json.loads(line)["messages"][1]["content"] for line in (data / name).read_text().splitlines()]

    known = set(messages("train_1k.jsonl"))
    pool = sorted({m for m in messages("train.jsonl") if m not in known and "\n" not in m})
    chosen = random.Random(0).sample(pool, count)
    out.write_text("\n".join(chosen) + "\n")
    return out


def newest_teacher(client: openai.OpenAI) -> str:
    tuned = sorted((m for m in client.models.list() if m.id.startswith("ft:") and ":banking77:" in m.id),
                   key=lambda m: m.created)
    if not tuned:
        sys.exit("no fine-tuned banking77 model on this server: run `make demo` first")
    return tuned[-1].id


def fine_tune(client: openai.OpenAI, train: Path) -> str:
    with open(train, "rb") as f:
        uploaded = client.files.wait_for_processing(client.files.create(file=f, purpose="fine-tune").id)
    job = client.fine_tuning.jobs.create(model=BASE_MODEL, training_file=uploaded.id, suffix="student", seed=0)
    while job.status not in ("succeeded", "failed", "cancelled"):
        time.sleep(5)
        job = client.fine_tuning.jobs.retrieve(job.id)
    if job.status != "succeeded":
        sys.exit(f"the student's job {job.status}: {job.error}")
    return job.fine_tuned_model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--prompts", type=int, default=1000)
    parser.add_argument("--test-sample", type=int, default=200)
    args = parser.parse_args()
    console.print(describe(), markup=False)
    data = banking77_dir()
    work = get_settings().home.expanduser() / "demo" / "distill"
    work.mkdir(parents=True, exist_ok=True)
    prompts = unlabelled_messages(data, args.prompts, work / "unlabelled.txt")
    timings = {}
    with local_server(work / "server.log") as url:
        client = openai.OpenAI(base_url=url, api_key="local", timeout=600)
        teacher = newest_teacher(client)
        console.print(f"teacher: {teacher}\n1. the teacher labels {args.prompts} unlabelled messages")
        started = time.monotonic()
        summary = distill(DistillConfig(teacher_base_url=url, teacher_model=teacher, prompts=prompts,
                                        out=work / "distilled.jsonl", system=SYSTEM_PROMPT, max_tokens=32,
                                        concurrency=8))
        timings["distill_s"] = time.monotonic() - started
        console.print(summary)
        console.print("2. the student (the same base model) is fine-tuned on the teacher's answers")
        started = time.monotonic()
        student = fine_tune(client, work / "distilled.jsonl")
        timings["student_training_s"] = time.monotonic() - started
        console.print(f"student: {student}\n3. teacher, student and the {FEW_SHOT}-shot base on the test sample")
        report = evaluate(EvalConfig(data=data / "test.jsonl", models=[teacher, student, BASE_MODEL],
                                     few_shot=FEW_SHOT, few_shot_from=data / "train_1k.jsonl",
                                     limit=args.test_sample, base_url=url, concurrency=8, out=work / "eval"))
    print_summary(report, console)
    labels = {json.loads(line)["messages"][1]["content"]: json.loads(line)["messages"][2]["content"]
              for line in (data / "train.jsonl").read_text().splitlines()}
    rows = [json.loads(line) for line in (work / "distilled.jsonl").read_text().splitlines()]
    agreement = sum(labels.get(r["messages"][1]["content"]) == r["messages"][2]["content"] for r in rows) / len(rows)
    console.print(f"the teacher's labels agree with Banking77's own on {agreement:.1%} of the distilled set")
    print(json.dumps({"summary": summary.model_dump(), "timings": timings, "label_agreement": agreement,
                      "models": [{"model": r.model, "kind": r.kind, "prompt_tokens": r.prompt_tokens,
                                  "latency_p50": r.latency_s.p50, "accuracy": r.quality["classification"].mean,
                                  "ci95": r.quality["classification"].ci95} for r in report.models]},
                     default=str, indent=1))


if __name__ == "__main__":
    main()
