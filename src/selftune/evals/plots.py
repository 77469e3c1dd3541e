"""The report's figures, drawn with matplotlib and embedded in the HTML as SVG (no files beside it,
no JavaScript)."""

from __future__ import annotations

import io
from collections import Counter
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from selftune.evals.graders.classification import Confusion
    from selftune.evals.results import ModelResult

COLORS = {"fine-tuned": "#2a9d8f", "base": "#e76f51"}


def _figure(width: float, height: float):
    import matplotlib

    matplotlib.use("Agg")  # no display; must precede pyplot
    import matplotlib.pyplot as plt

    plt.rcParams.update({"font.size": 9, "svg.fonttype": "none", "axes.spines.top": False,
                         "axes.spines.right": False})
    return plt.subplots(figsize=(width, height))


def _svg(fig) -> str:
    import matplotlib.pyplot as plt

    buffer = io.StringIO()
    fig.savefig(buffer, format="svg", bbox_inches="tight")
    plt.close(fig)
    text = buffer.getvalue()
    return text[text.index("<svg"):]  # drop the XML prolog and doctype: the SVG sits inside HTML


def _color(result: ModelResult) -> str:
    return COLORS["fine-tuned" if result.fine_tuned else "base"]


def short_name(model: str) -> str:
    """``ft:base:org:suffix:job`` -> ``ft:…:suffix`` (or the job id without a suffix): axis labels
    as long as the whole id would shrink the figure to illegibility."""
    from selftune.models.ids import parse_fine_tuned_id

    parsed = parse_fine_tuned_id(model)
    if parsed is None:
        return model
    tail = parsed.suffix or parsed.job
    return f"ft:…:{tail}" + (f":ckpt-{parsed.step}" if parsed.step is not None else "")


def _names(results: list[ModelResult]) -> list[str]:
    """Short axis labels; where two would read the same (an old and a new model with one suffix), the
    organisation and job tell them apart."""
    from selftune.evals.results import run_name

    short = {r.model: short_name(r.model) for r in results}  # a model and its "+ schema" row: one model
    clashes = Counter(short.values())
    names = [short[r.model] if clashes[short[r.model]] == 1 else _distinct_name(r.model) for r in results]
    return [f"{run_name(name, r.constrained)}\n({r.kind})" for name, r in zip(names, results, strict=True)]


def _distinct_name(model: str) -> str:
    from selftune.models.ids import parse_fine_tuned_id

    parsed = parse_fine_tuned_id(model)
    if parsed is None:
        return model
    step = f":ckpt-{parsed.step}" if parsed.step is not None else ""
    return f"ft:…:{parsed.org}:{parsed.suffix}:{parsed.job[:6]}…{step}"


def quality(results: list[ModelResult], grader: str) -> str:
    """Mean score per model with its 95% bootstrap interval."""
    fig, ax = _figure(6, 0.6 + 0.55 * len(results))
    means = [r.quality[grader].mean for r in results]
    lows = [m - r.quality[grader].ci95[0] for m, r in zip(means, results, strict=True)]
    highs = [r.quality[grader].ci95[1] - m for m, r in zip(means, results, strict=True)]
    y = range(len(results))
    ax.barh(y, means, xerr=[lows, highs], color=[_color(r) for r in results], capsize=4)
    for i, m in enumerate(means):
        ax.text(m + highs[i] + 0.01, i, f"{m:.1%}", va="center")
    ax.set_yticks(list(y), _names(results))
    ax.invert_yaxis()
    ax.set_xlim(0, 1.1)
    ax.set_xlabel(f"{grader} score (mean, 95% interval)")
    return _svg(fig)


def tokens(results: list[ModelResult]) -> str:
    """Prompt and completion tokens per request."""
    fig, ax = _figure(6, 0.6 + 0.55 * len(results))
    y = range(len(results))
    prompt = [r.prompt_tokens for r in results]
    completion = [r.completion_tokens for r in results]
    ax.barh(y, prompt, color=[_color(r) for r in results], label="prompt")
    ax.barh(y, completion, left=prompt, color="#adb5bd", label="completion")
    for i, (p, c) in enumerate(zip(prompt, completion, strict=True)):
        ax.text(p + c, i, f"  {p:,.0f} + {c:,.0f}", va="center")
    ax.set_yticks(list(y), _names(results))
    ax.invert_yaxis()
    ax.set_xlim(0, max(p + c for p, c in zip(prompt, completion, strict=True)) * 1.35)
    ax.set_xlabel("tokens per request")
    ax.legend(loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=2, frameon=False)
    return _svg(fig)


def latency(results: list[ModelResult]) -> str:
    """Each request's latency, per model: a box plot over the points; "" when no model's requests were
    timed one by one (a batch's were not)."""
    results = [r for r in results if r.latency_s.measured]
    if not results:
        return ""
    fig, ax = _figure(6, 0.6 + 0.55 * len(results))
    data = [r.latency_s.all for r in results]
    ax.boxplot(data, vert=False, widths=0.5, showfliers=False)
    for i, (values, r) in enumerate(zip(data, results, strict=True)):
        ax.scatter(values, [i + 1] * len(values), s=6, alpha=0.4, color=_color(r))
    ax.set_yticks(range(1, len(results) + 1), _names(results))
    ax.invert_yaxis()
    ax.set_xlabel("latency per request (s)")
    return _svg(fig)


def confusion(summary: Confusion, title: str) -> str:
    """Reference label (rows) against answered label (columns), counts as shades."""
    import numpy as np

    rows, columns = summary.rows, summary.columns
    matrix = np.asarray(summary.matrix, dtype=float)
    size = min(11, 2 + 0.12 * len(columns))
    fig, ax = _figure(size, size)
    ax.imshow(matrix, cmap="Blues", aspect="auto")
    small = 5 if len(columns) > 30 else 8
    ax.set_xticks(range(len(columns)), columns, rotation=90, fontsize=small)
    ax.set_yticks(range(len(rows)), rows, fontsize=small)
    ax.set_xlabel("answered")
    ax.set_ylabel("reference")
    ax.set_title(title)
    return _svg(fig)


def fields(results: list[ModelResult], grader: str) -> str:
    """F1 per field of a JSON extraction, one bar per model with its 95% interval: which attributes
    each model gets right, misses or invents. Rows without per-field figures are left out."""
    import numpy as np

    shown = [r for r in results if (r.quality[grader].model_extra or {}).get("per_field")]
    per_model = [r.quality[grader].model_extra["per_field"] for r in shown]
    names = list(dict.fromkeys(f for table in per_model for f in table))
    height = 0.8 / max(1, len(shown))
    fig, ax = _figure(6.5, 0.8 + 0.22 * len(names) * max(1, len(shown)))
    palette = ["#2a9d8f", "#8ab17d", "#e76f51", "#f4a261", "#264653", "#e9c46a", "#6d597a", "#b56576"]
    for i, (r, table, label) in enumerate(zip(shown, per_model, _names(shown), strict=True)):
        y = np.arange(len(names)) + i * height
        f1 = [table[f]["f1"] if f in table else 0.0 for f in names]
        ci = [table[f]["f1_ci95"] if f in table else (0.0, 0.0) for f in names]
        errors = [[max(0.0, v - low) for v, (low, _) in zip(f1, ci, strict=True)],
                  [max(0.0, high - v) for v, (_, high) in zip(f1, ci, strict=True)]]
        ax.barh(y, f1, height=height, xerr=errors, capsize=2, color=palette[i % len(palette)],
                hatch="//" if r.constrained else None, edgecolor="white", label=label.replace("\n", " "))
    ax.set_yticks(np.arange(len(names)) + height * (len(shown) - 1) / 2, names)
    ax.invert_yaxis()
    ax.set_xlim(0, 1.05)
    ax.set_xlabel("field F1 (95% interval)")
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.12), ncol=1, frameon=False, fontsize=7)
    return _svg(fig)
