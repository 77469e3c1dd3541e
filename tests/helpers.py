"""Plain helpers and sample data shared by test modules (fixtures live in conftest.py files; test
modules import from here, never from each other or from a conftest)."""

from __future__ import annotations

import json
import re
import threading
import time
from pathlib import Path

TINY_CONTEXT = 256  # the tiny model's context: small, so length warnings are easy to provoke

# one valid chat example, and enough of them that only the line under test can fail a check
SYSTEM = {"role": "system", "content": "Classify the message."}
USER = {"role": "user", "content": "I lost my card"}
ANSWER = {"role": "assistant", "content": "lost_or_stolen_card"}
GOOD = {"messages": [SYSTEM, USER, ANSWER]}
FILLER = [GOOD] * 10


def write_jsonl(path: Path, rows: list) -> Path:
    """Write rows (dicts, or raw strings taken as they are) one per line."""
    lines = [row if isinstance(row, str) else json.dumps(row) for row in rows]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


class ThreadedServer:
    """A real uvicorn server for ``app`` on a free 127.0.0.1 port, in a thread of this process: the
    stand-in endpoints (a scripted model, a misbehaving teacher) subclass it and build their app."""

    def __init__(self, app) -> None:
        import uvicorn

        from selftune.evals.local_server import free_port

        self.port = free_port()
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="error"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def start(self):
        self.thread.start()
        while not self.server.started:
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


def watched(context, confirm: str | None = None):
    """A new page and the list of what went wrong on it; a confirm dialog starting with ``confirm`` is
    accepted (the cancel button asks), any other dialog is a problem (an injected ``alert``)."""
    page = context.new_page()
    problems: list[str] = []
    page.on("console", lambda m: problems.append(f"console {m.type}: {m.text}") if m.type in ("error", "warning")
            else None)
    page.on("pageerror", lambda e: problems.append(f"page error: {e}"))

    def dialog(d):
        if confirm and d.type == "confirm" and d.message.startswith(confirm):
            d.accept()
        else:
            problems.append(f"dialog {d.type}: {d.message}")
            d.dismiss()

    page.on("dialog", dialog)
    return page, problems


# ---- dashboard pages ------------------------------------------------------------------------------
XSS = "<img src=x onerror=alert(1)>"  # runs a script wherever it is shown unescaped
TWO_KEYS = "key-a:org-a,key-b:org-b"  # SELFTUNE_API_KEYS of two organisations
CSRF_META = re.compile(r'<meta name="csrf-token" content="([^"]+)">')


def csrf_of(answer) -> str:
    """The CSRF token a dashboard page carries (every page has it in a meta tag)."""
    return CSRF_META.search(answer.text).group(1)


def sign_in(browser, key: str):
    """Sign a dashboard TestClient in with ``key`` through the login form; the form's answer."""
    return browser.post("/login", data={"api_key": key, "csrf_token": csrf_of(browser.get("/login"))})


def finished_run(tmp_path: Path, models: list[str], data_name: str = "test.jsonl"):
    """A finished evaluation's config and report, and its out folder as evaluate() leaves it (no model
    needed): what EvaluationService.record keeps."""
    from selftune.evals.config import EvalConfig
    from selftune.evals.results import EvalReport, Latency, ModelResult, Quality

    out = tmp_path / "out"
    out.mkdir(exist_ok=True)
    results = [ModelResult(model=m, kind="fine-tuned" if m.startswith("ft:") else "base", endpoint="http://x/v1",
                           requests=40, errors=1, quality={"classification": Quality(mean=0.81 - i / 10,
                                                                                      ci95=(0.7, 0.9))},
                           prompt_tokens=50, completion_tokens=3, latency_s=Latency(p50=0.25, p95=0.5, mean=0.3,
                                                                                    all=[0.25] * 40),
                           wall_s=10, requests_per_s=4, cost_per_1000={"local": 0.0123})
               for i, m in enumerate(models)]
    report = EvalReport(data=data_name, examples=40, seed=0, endpoint="http://x/v1", max_tokens=16, concurrency=4,
                        few_shot=0, labels=None, graders=["classification"], hourly_price=1.0, prices=[],
                        models=results, comparisons=[])
    (out / "report.html").write_text("<!doctype html><html><head><style>body{color:#222}</style></head>"
                                     "<body><h1>What fine-tuning bought</h1><svg style=\"fill:red\"></svg></body></html>")
    (out / "report.json").write_text(json.dumps(report.model_dump()))
    (out / "results.jsonl").write_text("{}\n")
    config = EvalConfig(data=tmp_path / data_name, models=models, out=out, api_key="key-a")
    return config, report
