"""The README's dashboard screenshots, taken in Debian's chromium from a running server after ``make demo``.

    make demo                      # trains the Banking77 job and records its evaluation
    .venv/bin/selftune serve &     # the same home: the demo's job is in its dashboard
    .venv/bin/python scripts/screenshots.py

Writes ``docs/images/dashboard-job.png`` (the demo job's page, its curves drawn) and
``docs/images/dashboard-playground.png`` (its fine-tuned model next to the base model, answers in).
Not a test: the pictures are of a real run and change with it.
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

import openai

SYSTEM = "Classify the customer's banking message into exactly one intent label. Answer with the label only."
MESSAGE = "I ordered a new card last week and it still hasn't come. How long does delivery take?"
SIZE = {"width": 1400, "height": 1480}  # tall enough for the job page's summary and its first row of curves


def newest_succeeded_job(client: openai.OpenAI, suffix: str):
    for job in client.fine_tuning.jobs.list(limit=100):
        if job.status == "succeeded" and job.fine_tuned_model and f":{suffix}:" in job.fine_tuned_model:
            return job
    raise SystemExit(f"no succeeded job with the suffix {suffix!r}: run `make demo` first")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="http://127.0.0.1:8000", help="the server (its dashboard is at /)")
    parser.add_argument("--suffix", default="banking77", help="the demo job's suffix")
    parser.add_argument("--base-model", default="smollm2-135m-instruct")
    parser.add_argument("--out", type=Path, default=Path("docs/images"))
    args = parser.parse_args()
    client = openai.OpenAI(base_url=f"{args.url}/v1", api_key="local")
    job = newest_succeeded_job(client, args.suffix)
    executable = shutil.which("chromium") or shutil.which("chromium-browser")
    if executable is None:
        raise SystemExit("needs Debian's chromium (apt install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=executable, args=["--no-sandbox"])
        page = browser.new_page(viewport=SIZE, device_scale_factor=1)
        page.goto(f"{args.url}/jobs/{job.id}")
        page.wait_for_selector("#curves[data-drawn-ms]", timeout=30_000)
        page.screenshot(path=str(args.out / "dashboard-job.png"))

        page.goto(f"{args.url}/playground?model={job.fine_tuned_model}&model={args.base_model}")
        page.fill("#system", SYSTEM)
        page.fill("#turns .content", MESSAGE)
        page.fill("#temperature", "0")
        page.fill("#max-tokens", "48")
        page.click("#send")
        for index in range(page.locator("section.column:not([hidden])").count()):  # no eval: the CSP forbids it
            page.wait_for_selector(f'section.column[data-index="{index}"][data-state="done"]', timeout=120_000)
        answers = page.locator("section.column").first.bounding_box()
        page.screenshot(path=str(args.out / "dashboard-playground.png"),  # down to the answers, no blank below
                        clip={"x": 0, "y": 0, "width": SIZE["width"], "height": answers["y"] + answers["height"] + 24})
        browser.close()
    print(f"wrote {args.out / 'dashboard-job.png'} and {args.out / 'dashboard-playground.png'} ({job.id})")


if __name__ == "__main__":
    main()
