"""The dashboard's speed and size: curves of a 10,000-step run, the jobs page with 10,000 jobs, the
compare page with 8 runs of 10,000 steps, and the static assets' bytes.

Builds a temporary SELFTUNE_HOME (jobs and their metrics events written straight into the store, as the
worker's relay writes them, so building takes seconds, not a training run), starts a real
``selftune serve --no-worker`` on 127.0.0.1, and measures:

1. the job page of a 10,000-step run: from navigation until its curves are drawn in chromium (job.js's
   ``selftune:curves-drawn`` performance mark, after the charts have been painted), median of a few
   loads; target < 500 ms. Also the server's answer time for its ``curves.json``.
2. the jobs page (``GET /``) with 10,000 jobs: the server's answer time, median; target < 300 ms.
3. every static asset together (what the pages can load: .js, .css, .svg), raw and gzipped; target
   < 300 KB.
4. the compare page with 8 runs of 10,000 steps (``selftune:compare-drawn``), median.

    .venv/bin/python bench/dashboard.py [--loads 5] [--jobs 10000] [--steps 10000]

Needs chromium (/usr/bin/chromium) and playwright for 1 and 4.
"""

from __future__ import annotations

import argparse
import gzip
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from selftune.evals.local_server import free_port
from selftune.hardware import describe

ROOT = Path(__file__).resolve().parent.parent
STATIC = ROOT / "src" / "selftune" / "dashboard" / "static"
ORG = "local"
EVAL_EVERY = 100  # a validation point every 100 steps, as a run with a validation file has
TARGETS = {"job page curves drawn": 500, "jobs page GET /": 300}  # ms


def build(home: Path, n_jobs: int, n_steps: int, n_runs: int) -> list[str]:
    """``n_jobs`` finished jobs, of which the newest ``n_runs`` have ``n_steps`` steps of metrics events
    each; answers the ids of those runs. Bulk inserts through the store's tables and Database."""
    from sqlalchemy import insert

    from selftune.jobs.lifecycle import JobStatus
    from selftune.store.db import Database
    from selftune.store.tables import EventRow, JobRow, new_id
    from selftune.train.methods import Method

    db = Database(f"sqlite:///{home / 'selftune.db'}")
    start = int(time.time()) - n_jobs * 60
    hp = {"n_epochs": 4, "batch_size": 8, "learning_rate_multiplier": 1.0}
    jobs, runs = [], []
    for i in range(n_jobs):
        job_id = new_id("ftjob-")
        jobs.append({"id": job_id, "org": ORG, "model": "tiny", "training_file": "file-bench",
                     "validation_file": "file-bench-valid", "method": Method.SUPERVISED, "hyperparameters": hp,
                     "resolved_hyperparameters": hp, "suffix": f"bench-{i}", "seed": i, "metadata_": {"bench": "yes"},
                     "status": JobStatus.SUCCEEDED, "created_at": start + i * 60, "finished_at": start + i * 60 + 50,
                     "fine_tuned_model": f"ft:tiny:{ORG}:bench-{i}:{job_id[6:14]}", "trained_tokens": 64 * n_steps,
                     "result_files": [], "attempts": 1})
        if i >= n_jobs - n_runs:
            runs.append(job_id)
    with db.transaction() as session:
        session.execute(insert(JobRow), jobs)
    for r, job_id in enumerate(runs):
        created = jobs[n_jobs - n_runs + r]["created_at"]
        events = [_event(job_id, created, "Fine-tuning job started", "message",
                         {"hyperparameters": hp, "total_steps": n_steps, "tokens_per_step": 64})]
        for step in range(1, n_steps + 1):
            loss = 2.5 / (1 + step / 500) + 0.02 * ((step * 7919 + r) % 13) / 13 + 0.05 * r
            events.append(_event(job_id, created, f"Step {step}/{n_steps}: training loss={loss:.4f}", "metrics",
                                 {"step": step, "total_steps": n_steps, "train_loss": loss,
                                  "train_mean_token_accuracy": min(0.99, 0.4 + step / (2 * n_steps)),
                                  "learning_rate": 1e-4 * (1 - step / n_steps), "tokens_per_second": 900.0 + r}))
            if step % EVAL_EVERY == 0:
                events.append(_event(job_id, created, f"Step {step}: validation", "metrics",
                                     {"step": step, "valid_loss": loss + 0.1, "valid_mean_token_accuracy": 0.5}))
        with db.transaction() as session:
            session.execute(insert(EventRow), events)
    db.dispose()
    return runs


def _event(job_id: str, created: int, message: str, kind: str, data: dict) -> dict:
    from selftune.store.tables import new_id

    return {"id": new_id("ftevent-"), "job_id": job_id, "org": ORG, "created_at": created, "level": "info",
            "message": message, "type": kind, "data": data}


def start_server(home: Path, port: int) -> subprocess.Popen:
    env = {**os.environ, "SELFTUNE_HOME": str(home), "HF_HUB_OFFLINE": "1"}
    env.pop("SELFTUNE_API_KEYS", None)
    env["PYTHONPATH"] = str(ROOT / "src") + os.pathsep + env.get("PYTHONPATH", "")
    process = subprocess.Popen([sys.executable, "-m", "selftune.cli", "serve", "--port", str(port), "--no-worker"],
                               env=env, stdout=open(home / "server.log", "ab"),  # noqa: SIM115
                               stderr=subprocess.STDOUT)
    for _ in range(300):
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1):
                return process
        except OSError:
            if process.poll() is not None:
                raise RuntimeError(f"server exited:\n{(home / 'server.log').read_text()[-3000:]}") from None
            time.sleep(0.2)
    raise RuntimeError("server did not start")


def answer_ms(url: str, times: int) -> list[float]:
    """The server's answer time (request sent until the whole body is read), ``times`` times after one
    warm-up request."""
    urllib.request.urlopen(url).read()
    spent = []
    for _ in range(times):
        began = time.perf_counter()
        with urllib.request.urlopen(url) as answer:
            answer.read()
        spent.append((time.perf_counter() - began) * 1000)
    return spent


def drawn_ms(browser, url: str, root: str, mark: str, loads: int) -> list[float]:
    """Navigation start until ``mark`` (the charts painted), for ``loads`` fresh page loads."""
    spent: list[float] = []
    errors: list[str] = []
    for _ in range(loads + 1):  # the first load warms the server's and the browser's caches
        context = browser.new_context()
        page = context.new_page()
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(url)
        page.wait_for_function(f"() => document.querySelector('{root}').dataset.drawnMs", timeout=60_000)
        spent.append(page.evaluate(f"() => performance.getEntriesByName('{mark}')[0].startTime"))
        points = page.get_attribute("#chart-learning-rate", "data-points")
        context.close()
        if errors:
            raise RuntimeError(f"{url}: {errors}")
    print(f"    ({points} learning-rate points drawn)")
    return spent[1:]


def assets() -> tuple[int, int, dict[str, int]]:
    files = sorted(p for p in STATIC.rglob("*") if p.is_file() and p.suffix in (".js", ".css", ".svg"))
    raw = {str(p.relative_to(STATIC)): p.stat().st_size for p in files}
    zipped = sum(len(gzip.compress(p.read_bytes(), 9)) for p in files)
    return sum(raw.values()), zipped, raw


def verdict(value: float, target: float) -> str:
    return f"{'met' if value < target else 'MISSED'} (target < {target:g})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--loads", type=int, default=5, help="page loads per browser measurement")
    parser.add_argument("--requests", type=int, default=9, help="requests per server measurement")
    parser.add_argument("--jobs", type=int, default=10_000)
    parser.add_argument("--steps", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=8, help="jobs with --steps steps (the compare page's)")
    args = parser.parse_args()
    print(f"{describe()} · Python {platform.python_version()}")

    home = Path(tempfile.mkdtemp(prefix="selftune-bench-dashboard-"))
    process = None
    try:
        began = time.perf_counter()
        runs = build(home, args.jobs, args.steps, args.runs)
        print(f"built {args.jobs:,} jobs, {args.runs} of them with {args.steps:,} steps, in "
              f"{time.perf_counter() - began:.1f} s")
        port = free_port()
        process = start_server(home, port)
        base = f"http://127.0.0.1:{port}"

        jobs_page = answer_ms(base + "/", args.requests)
        print(f"jobs page GET / with {args.jobs:,} jobs: median {statistics.median(jobs_page):.0f} ms "
              f"(min {min(jobs_page):.0f}, max {max(jobs_page):.0f}) "
              f"{verdict(statistics.median(jobs_page), TARGETS['jobs page GET /'])}")
        curves = answer_ms(f"{base}/jobs/{runs[-1]}/curves.json", args.requests)
        print(f"curves.json of a {args.steps:,}-step run: median {statistics.median(curves):.0f} ms")

        raw, zipped, sizes = assets()
        print(f"static assets: {raw / 1024:.1f} KB raw, {zipped / 1024:.1f} KB gzipped "
              f"{verdict(raw / 1024, 300)} ({', '.join(f'{k} {v / 1024:.1f}' for k, v in sizes.items())})")

        executable = shutil.which("chromium") or shutil.which("chromium-browser")
        if executable is None:
            print("no chromium: the drawing times are left out")
            return
        from playwright.sync_api import sync_playwright

        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=executable, args=["--no-sandbox"])
            job_page = drawn_ms(browser, f"{base}/jobs/{runs[-1]}", "#curves", "selftune:curves-drawn", args.loads)
            print(f"job page of a {args.steps:,}-step run, curves drawn: median {statistics.median(job_page):.0f} ms "
                  f"(min {min(job_page):.0f}, max {max(job_page):.0f}) "
                  f"{verdict(statistics.median(job_page), TARGETS['job page curves drawn'])}")
            query = "&".join(f"job={r}" for r in runs)
            compare = drawn_ms(browser, f"{base}/compare?{query}", "#curves", "selftune:compare-drawn", args.loads)
            print(f"compare page, {len(runs)} runs of {args.steps:,} steps, curves drawn: median "
                  f"{statistics.median(compare):.0f} ms (min {min(compare):.0f}, max {max(compare):.0f})")
            browser.close()
    finally:
        if process is not None:
            process.terminate()
            process.wait(timeout=30)
        shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    main()
