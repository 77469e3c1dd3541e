"""The report: a table in the terminal and a self-contained ``report.html`` (figures inline)."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from datetime import datetime, timezone
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from selftune.evals import plots
from selftune.evals.results import LOCAL_COST, EvalReport, ExampleResult, ModelResult, run_name
from selftune.store.atomic import atomic_write

WRONG_SHOWN = 25  # wrong answers listed per model in the HTML


@contextlib.contextmanager
def progress_bars(console: Console) -> Iterator[Callable[[str, int], Callable[[int], None]]]:
    """A bar per model while its requests run: what :func:`selftune.evals.evaluate` takes as progress."""
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=console) as progress:
        def start(model: str, total: int) -> Callable[[int], None]:
            task = progress.add_task(f"  {model}", total=total)
            return lambda n: progress.advance(task, n)

        yield start


def print_summary(report: EvalReport, console: Console) -> None:
    grader = report.grader
    table = Table(title=f"{report.data} · {report.examples} examples · {grader}")
    for column in ("model", "kind", "quality (95% CI)", "prompt tok", "answer tok", "latency p50 / p95",
                   "req/s", "cost / 1k req (own)"):
        table.add_column(column, justify="left" if column in ("model", "kind") else "right")
    for price in report.prices:
        table.add_column(f"at {price.name} prices", justify="right")
    for r in report.models:
        q = r.quality[grader]
        table.add_row(r.name, r.kind, f"{q.mean:.1%} ({q.ci95[0]:.1%}–{q.ci95[1]:.1%})",
                      f"{r.prompt_tokens:,.0f}", f"{r.completion_tokens:,.1f}",
                      latency_text(r),
                      f"{r.requests_per_s:.2f}" if r.requests_per_s else "–",
                      f"${r.own_cost:.4f}" + ("" if r.cost_basis == LOCAL_COST else f" ({r.cost_basis})"),
                      *[f"${r.cost_per_1000[p.name]:.4f}" for p in report.prices])
    console.print(table)
    print_structured(report, console)
    for line in bought(report) + agreed(report):
        console.print(f"  {line}")
    for r in report.models:
        if r.errors:
            console.print(f"  [red]{r.name}: {r.errors} requests failed (graded as wrong)[/]")


def latency_text(r: ModelResult) -> str:
    """p50 / p95 of one row, or a dash where requests were not timed one by one (a batch's)."""
    if not r.latency_s.measured:
        return "— (batch)"
    return f"{r.latency_s.p50:.2f} / {r.latency_s.p95:.2f} s"


def structured(report: EvalReport) -> list[tuple[ModelResult, dict]]:
    """The rows graded field by field (the json grader's figures), with those figures."""
    out = []
    for r in report.models:
        extra = r.quality[report.grader].model_extra or {}
        if extra.get("per_field"):
            out.append((r, extra))
    return out


def _interval(figure: dict, share: bool = True) -> str:
    low, high = figure["ci95"]
    if share:
        return f"{figure['value']:.1%} ({low:.1%}–{high:.1%})"
    return f"{figure['value']:.3f} ({low:.3f}–{high:.3f})"


def print_structured(report: EvalReport, console: Console) -> None:
    """For a JSON extraction: validity, exact objects and field figures per model, F1 per field, and
    each model's worst fields with their commonest errors."""
    rows = structured(report)
    if not rows:
        return
    table = Table(title="structured output · fields pooled over all examples")
    for column in ("model", "valid JSON", "exact object (95% CI)", "field precision", "field recall",
                   "field F1 (95% CI)"):
        table.add_column(column, justify="left" if column == "model" else "right")
    for r, x in rows:
        fields = x["fields"]
        table.add_row(r.name, f"{x['valid_json']['value']:.1%}", _interval(x["exact_match"]),
                      f"{fields['precision']['value']:.3f}", f"{fields['recall']['value']:.3f}",
                      _interval(fields["f1"], share=False))
    console.print(table)
    names = list(dict.fromkeys(f for _, x in rows for f in x["per_field"]))
    per_field = Table(title="F1 per field (support: the reference's count)")
    per_field.add_column("field")
    per_field.add_column("support", justify="right")
    for r, _ in rows:
        per_field.add_column(run_name(plots.short_name(r.model), r.constrained), justify="right")
    for name in names:
        support = next((x["per_field"][name]["support"] for _, x in rows if name in x["per_field"]), 0)
        per_field.add_row(name, f"{support:,}", *[f"{x['per_field'][name]['f1']:.2f}" if name in x["per_field"]
                                                 else "–" for _, x in rows])
    console.print(per_field)
    for r, x in rows:
        for field, pairs in list(x.get("confusions", {}).items())[:1]:
            errors = ", ".join(f"{p['reference']} → {p['answer']} ×{p['count']}" for p in pairs[:3])
            console.print(f"  {r.name}: worst field {field} (F1 {x['per_field'][field]['f1']:.2f}): {errors}",
                          markup=False)


RATIOS = (("prompt_tokens_ratio", "fewer prompt tokens"), ("latency_p50_ratio", "lower latency"),
          ("local_cost_ratio", "lower cost"))


def bought(report: EvalReport) -> list[str]:
    """One sentence per fine-tuned/base pair: what fine-tuning bought."""
    lines = []
    for c in report.comparisons:
        parts = [f"{c.quality_gain * 100:+.1f} points of {c.grader}"]
        for name, what in RATIOS:
            ratio = getattr(c, name)
            if ratio:
                parts.append(f"{ratio:.1f}× {what}")
        lines.append(f"{c.fine_tuned} against {c.base} ({c.base_kind}): " + ", ".join(parts))
    return lines


def agreed(report: EvalReport) -> list[str]:
    """One sentence per model compared with the reference model of the run."""
    return [f"{a.model} gives the same answer as {a.with_model} on {a.share:.1%} of the examples "
            f"(95% CI {a.ci95[0]:.1%}–{a.ci95[1]:.1%})" for a in report.agreements]


def write_html(report: EvalReport, rows: list[ExampleResult], path: Path) -> None:
    from jinja2 import Environment
    from markupsafe import Markup

    grader = report.grader
    results = report.models
    figures = {"quality": plots.quality(results, grader), "tokens": plots.tokens(results),
               "latency": plots.latency(results)}
    confusions = [(r.name, plots.confusion(r.quality[grader].confusion, r.name))
                  for r in results if "confusion" in (r.quality[grader].model_extra or {})]
    wrong = {r.name: [row for row in rows if row.name == r.name and row.scores[grader] < 1][:WRONG_SHOWN]
             for r in results}
    extraction = structured(report)
    if extraction:
        figures["fields"] = plots.fields(results, grader)
    env = Environment(autoescape=True)
    html = env.from_string(TEMPLATE).render(
        report=report, grader=grader, results=results, latency_text=latency_text,
        bought=bought(report) + agreed(report), wrong=wrong,
        figures={k: Markup(v) for k, v in figures.items()},
        confusions=[(m, Markup(svg)) for m, svg in confusions], extraction=extraction,
        generated=datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"))
    with atomic_write(path) as f:
        f.write(html)


TEMPLATE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>selftune eval · {{ report.data }}</title>
<style>
 body { font: 14px/1.5 system-ui, sans-serif; margin: 2rem auto; max-width: 1100px; padding: 0 1rem; color: #222; }
 h1 { font-size: 1.5rem; margin-bottom: 0; overflow-wrap: anywhere; } .meta { color: #666; margin-top: .2rem; }
 .bought { background: #e9f5f3; border-left: 4px solid #2a9d8f; padding: .6rem 1rem; margin: 1rem 0; }
 table { border-collapse: collapse; width: 100%; margin: 1rem 0; }
 th, td { border-bottom: 1px solid #ddd; padding: .35rem .5rem; text-align: right; vertical-align: top; }
 td { overflow-wrap: anywhere; }
 th:first-child, td:first-child, td.text { text-align: left; }
 .grid { display: grid; grid-template-columns: repeat(auto-fit, minmax(480px, 1fr)); gap: 1rem; }
 figure { margin: 0; } figcaption { font-weight: 600; margin-bottom: .3rem; }
 svg { max-width: 100%; height: auto; } details { margin: .8rem 0; }
 .wrong td { font-size: 13px; } .err { color: #b00020; }
</style></head><body>
{% set agreed = report.agreements[0] if report.agreements else None %}
<h1>{% if agreed %}Can {{ agreed.model }} replace {{ agreed.with_model }}?
{%- else %}What fine-tuning bought{% endif %}</h1>
<p class="meta">{{ report.data }} · {{ report.examples }} examples (seed {{ report.seed }}) · graded by
{{ report.graders | join(", ") }} · {{ report.endpoint }} · {{ generated }}</p>
{% if bought %}<div class="bought">{% for line in bought %}<div>{{ line }}</div>{% endfor %}</div>{% endif %}
<table>
<tr><th>model</th><th>kind</th><th>{{ grader }} (95% CI)</th><th>prompt tokens</th><th>answer tokens</th>
<th>latency p50 / p95</th><th>requests/s</th><th>cost / 1,000 requests (own)</th>
{% for p in report.prices %}<th>at {{ p.name }} prices</th>{% endfor %}<th>failed</th></tr>
{% for r in results %}{% set q = r.quality[grader] %}
<tr><td>{{ r.name }}</td><td class="text">{{ r.kind }}</td>
<td>{{ "%.1f%%" % (q.mean * 100) }} ({{ "%.1f" % (q.ci95[0] * 100) }}–{{ "%.1f" % (q.ci95[1] * 100) }})</td>
<td>{{ "{:,.0f}".format(r.prompt_tokens) }}</td><td>{{ "%.1f" % r.completion_tokens }}</td>
<td>{{ latency_text(r) }}</td>
<td>{{ "%.2f" % r.requests_per_s if r.requests_per_s else "–" }}</td>
<td>${{ "%.4f" % r.own_cost }}{% if r.cost_basis != "local" %} ({{ r.cost_basis }}){% endif %}</td>
{% for p in report.prices %}<td>${{ "%.4f" % r.cost_per_1000[p.name] }}</td>{% endfor %}
<td{% if r.errors %} class="err"{% endif %}>{{ r.errors }}</td></tr>{% endfor %}
</table>
<p class="meta">Own cost: for a model served here, the measured wall time per request at
{{ report.hourly_price }} $/hour for this machine; for a hosted model, its per-token price (named).
{% if report.batch %}Requests went through the endpoint's Batch API, one batch per model: a request's latency is
not measured (it waits in the batch's queue), and requests/s and the local cost count the batch's wall time, from its
creation to its end, waiting included.{% else %}Requests ran {{ report.concurrency }} at a time: latency is per
request, requests/s the throughput.{% endif %}</p>
<div class="grid">
<figure><figcaption>Quality</figcaption>{{ figures.quality }}</figure>
<figure><figcaption>Tokens per request</figcaption>{{ figures.tokens }}</figure>
{% if figures.latency %}<figure><figcaption>Latency</figcaption>{{ figures.latency }}</figure>{% endif %}
</div>
{% if extraction %}{% set pct = "%.1f%%" %}
<h2>Structured output</h2>
<table>
<tr><th>model</th><th>valid JSON</th><th>exact object (95% CI)</th><th>field precision (95% CI)</th>
<th>field recall (95% CI)</th><th>field F1 (95% CI)</th><th>valid JSON, not an object</th></tr>
{% for r, x in extraction %}<tr><td>{{ r.name }}</td><td>{{ pct % (x.valid_json.value * 100) }}</td>
{% set e = x.exact_match %}
<td>{{ pct % (e.value * 100) }} ({{ "%.1f" % (e.ci95[0] * 100) }}–{{ "%.1f" % (e.ci95[1] * 100) }})</td>
{% for f in (x.fields.precision, x.fields.recall, x.fields.f1) %}
<td>{{ "%.3f" % f.value }} ({{ "%.3f" % f.ci95[0] }}–{{ "%.3f" % f.ci95[1] }})</td>{% endfor %}
<td>{{ x.not_object }}</td></tr>{% endfor %}
</table>
<p class="meta">An answer's score is 1 when its object equals the reference: every field, nothing more. Field by
field, a wrong value counts against precision and recall, a missing field against recall, a field the text does not
state against precision; nested objects count as dotted paths. Intervals: bootstrap over the examples.</p>
<figure><figcaption>F1 per field</figcaption>{{ figures.fields }}</figure>
{% for r, x in extraction %}
<details><summary>Fields of {{ r.name }}: counts and the worst fields' errors</summary>
<table><tr><th>field</th><th>support</th><th>right</th><th>wrong</th><th>missing</th><th>extra</th><th>precision</th>
<th>recall</th><th>F1 (95% CI)</th></tr>
{% for name, f in x.per_field.items() %}<tr><td>{{ name }}</td><td>{{ f.support }}</td><td>{{ f.right }}</td>
<td>{{ f.wrong }}</td><td>{{ f.missing }}</td><td>{{ f.extra }}</td><td>{{ "%.2f" % f.precision }}</td>
<td>{{ "%.2f" % f.recall }}</td><td>{{ "%.2f" % f.f1 }} ({{ "%.2f" % f.f1_ci95[0] }}–{{ "%.2f" % f.f1_ci95[1] }})</td>
</tr>{% endfor %}</table>
{% for name, pairs in x.confusions.items() %}
<table class="wrong"><tr><th>{{ name }}: reference</th><th>answer</th><th>count</th></tr>
{% for p in pairs %}<tr><td class="text">{{ p.reference }}</td><td class="text">{{ p.answer }}</td>
<td>{{ p.count }}</td></tr>{% endfor %}</table>{% endfor %}
</details>{% endfor %}
{% endif %}
{% for r in results %}{% set q = r.quality[grader] %}{% if q.macro_f1 is defined %}
<p><b>{{ r.name }}</b>: accuracy {{ "%.1f%%" % (q.accuracy * 100) }}, macro-F1 {{ "%.3f" % q.macro_f1 }},
{{ q.off_label_answers }} answers that are none of the {{ q.per_class | length }} labels.</p>{% endif %}{% endfor %}
{% for model, svg in confusions %}
<details><summary>Confusion matrix: {{ model }}</summary>{{ svg }}</details>{% endfor %}
{% for r in results %}
<details><summary>Wrong answers: {{ r.name }} (first {{ wrong[r.name] | length }})</summary>
<table class="wrong"><tr><th>line</th><th>prompt</th><th>reference</th><th>answer</th></tr>
{% for row in wrong[r.name] %}<tr><td>{{ row.line }}</td><td class="text">{{ row.prompt }}</td>
<td class="text">{{ row.reference }}</td><td class="text">{% if row.error %}<span class="err">{{ row.error }}</span>
{% else %}{{ row.answer }}{% endif %}</td></tr>{% endfor %}
</table></details>{% endfor %}
<p class="meta">Per-example results: results.jsonl · all figures: report.json</p>
</body></html>
"""
