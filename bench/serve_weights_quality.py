"""What SELFTUNE_SERVE_WEIGHTS=int8 costs in answers: a fine-tuned model's greedy answers with full and int8 weights.

The embedded engine in this process (no HTTP), one engine at a time, every test row submitted at once
(continuous batching, as a batch job or an eval would run): for each weights setting, the share of answers
equal to the test file's reference (for JSON answers: the same object) and, for int8, the share of answers
identical to full weights'. With several ``--dtype`` values it also says how often full weights agree with
themselves across dtypes: how much any numerical change moves this model's answers. Run it on your own task
and adapter before switching a server to int8.

    .venv/bin/python bench/serve_weights_quality.py --adapter OUT/adapter --test test.jsonl [--rows 500]
        [--dtype auto fp32] [--max-tokens 96]
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from datetime import date
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))
from selftune.config import ServeWeights  # noqa: E402

MODEL = "smollm2-135m-instruct"


def test_rows(path: Path, rows: int) -> list[tuple[list[dict], str]]:
    """(prompt messages, reference answer) of the first ``rows`` chat examples."""
    out = []
    with path.open(encoding="utf-8") as lines:
        for line in lines:
            messages = json.loads(line)["messages"]
            out.append((messages[:-1], messages[-1]["content"]))
            if len(out) == rows:
                break
    return out


def answers(dtype: str, weights: str, adapter: Path, prompts: list[list[dict]],
            max_tokens: int) -> tuple[list[str], float]:
    """Greedy answer texts of every prompt (all submitted at once) and the seconds they took."""
    from selftune.models.chat_template import render_prompt
    from selftune.serve.embedded import EmbeddedEngine
    from selftune.serve.engine import Finished, GenerationRequest, SamplingParams, ServedModel

    engine = EmbeddedEngine(dtype=dtype, weights=weights)
    try:
        model = ServedModel("ft", MODEL, adapter)
        tokenizer = engine.tokenizer(model)
        texts: list[str | None] = [None] * len(prompts)
        done = [threading.Event() for _ in prompts]
        started = time.perf_counter()
        for i, messages in enumerate(prompts):
            def emit(event, i=i):
                if isinstance(event, Finished):
                    texts[i] = event.text
                    done[i].set()
            engine.submit(GenerationRequest(model, render_prompt(tokenizer, messages),
                                            SamplingParams(max_tokens=max_tokens, temperature=0.0)), emit)
        for event in done:
            event.wait(3600)
        return [t or "" for t in texts], time.perf_counter() - started
    finally:
        engine.close()


def same_answer(answer: str, reference: str) -> bool:
    """Equal text, or equal JSON objects where both parse (key order and spacing don't count)."""
    if answer.strip() == reference.strip():
        return True
    try:
        return json.loads(answer) == json.loads(reference)
    except ValueError:
        return False


def share(hits) -> float:
    """The fraction of true values among ``hits`` (one per row), to 4 places."""
    hits = list(hits)
    return round(sum(hits) / len(hits), 4)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--adapter", type=Path, required=True, help="a fine-tuned model's adapter folder")
    parser.add_argument("--test", type=Path, required=True, help="chat JSONL whose last message is the reference")
    parser.add_argument("--rows", type=int, default=500)
    parser.add_argument("--dtype", nargs="+", default=["auto"], help="serving dtypes to compare weights in")
    parser.add_argument("--max-tokens", type=int, default=96)
    args = parser.parse_args()

    from selftune import hardware

    print(hardware.describe(), flush=True)
    rows = test_rows(args.test, args.rows)
    prompts, references = [m for m, _ in rows], [r for _, r in rows]
    first_full = None
    for dtype in args.dtype:
        results = {}
        for weights in (ServeWeights.FULL.value, ServeWeights.INT8.value):
            results[weights] = answers(dtype, weights, args.adapter, prompts, args.max_tokens)
        full, int8 = results[ServeWeights.FULL.value][0], results[ServeWeights.INT8.value][0]
        row = {"date": date.today().isoformat(), "test": args.test.name, "rows": len(rows), "dtype": dtype}
        for weights, (texts, seconds) in results.items():
            row[f"{weights}_correct"] = share(map(same_answer, texts, references))
            row[f"{weights}_seconds"] = round(seconds, 1)
        row["int8_identical_to_full"] = share(a == b for a, b in zip(full, int8, strict=True))
        row["int8_same_answer_as_full"] = share(map(same_answer, int8, full))
        if first_full is None:
            first_full = (dtype, full)
        else:
            row[f"full_identical_to_full_{first_full[0]}"] = share(
                a == b for a, b in zip(full, first_full[1], strict=True))
        print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
