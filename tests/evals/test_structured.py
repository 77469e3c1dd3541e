"""Structured output in one run: each model also decoded under the schema (a "+ schema" row), the
base model with K shots from the training file, graded field by field, in the table, report.json and
report.html."""

from __future__ import annotations

import json

import pytest
from rich.console import Console

from selftune.errors import SelftuneError
from selftune.evals import EvalConfig, EvalReport, evaluate
from selftune.evals.report import print_summary
from selftune.evals.schema import response_format
from tests.helpers import write_jsonl

SYSTEM = "Extract the restaurant's attributes as one JSON object."
SCHEMA = {"type": "object", "properties": {"name": {"type": "string"}, "area": {"enum": ["riverside", "city centre"]}},
          "additionalProperties": False}
TEST = [("Aromi is by the river.", {"name": "Aromi", "area": "riverside"}),
        ("Zizzi, in the city centre.", {"name": "Zizzi", "area": "city centre"}),
        ("The Punter is a place.", {"name": "The Punter"}),
        ("Cotto, riverside.", {"name": "Cotto", "area": "riverside"})]
TRAIN = [("Alimentum is in the city centre.", {"name": "Alimentum", "area": "city centre"}),
         ("Bibimbap House.", {"name": "Bibimbap House"}), ("Loch Fyne, riverside.", {"name": "Loch Fyne",
                                                                                     "area": "riverside"})]


def rows(pairs):
    return [{"messages": [{"role": "system", "content": SYSTEM}, {"role": "user", "content": text},
                          {"role": "assistant", "content": json.dumps(answer)}]} for text, answer in pairs]


@pytest.fixture
def four_rows(scripted_endpoint, tmp_path):
    """A fine-tuned and a base model, each with and without the schema: (config, report, endpoints)."""
    right = {text: json.dumps(answer) for text, answer in TEST}
    tuned = {**right, "Cotto, riverside.": '{"name": "Cotto", "area": "riverside", "food": "Italian"}'}  # 3 of 4
    base = {text: "Sure! Here is the JSON." for text, _ in TEST}  # never JSON unconstrained
    base_constrained = {text: json.dumps({"name": answer["name"]}) for text, answer in TEST}  # names only: 1 of 4
    answers = {"ft:tiny:org::job-1": (tuned, right), "tiny": (base, base_constrained)}
    # a scripted endpoint answers by prompt: one per model keeps their tables apart
    endpoints = {model: scripted_endpoint({model}, free, constrained=constrained)
                 for model, (free, constrained) in answers.items()}
    schema = tmp_path / "restaurant schema.json"
    schema.write_text(json.dumps(SCHEMA))
    config = EvalConfig(
        data=write_jsonl(tmp_path / "test.jsonl", rows(TEST)), few_shot=2,
        few_shot_from=write_jsonl(tmp_path / "train.jsonl", rows(TRAIN)), schema_file=schema, out=tmp_path / "out",
        models=[{"model": m, "base_url": endpoints[m].url} for m in answers], concurrency=2)
    return config, evaluate(config), endpoints


def test_every_model_also_runs_under_the_schema_and_the_base_gets_k_shots(four_rows, tmp_path):
    config, report, endpoints = four_rows
    schema = config.schema_file
    assert report.graders == ["json"] and report.schema_file == str(schema)  # JSON objects: the json grader
    assert [(r.name, r.kind, r.constrained) for r in report.models] == [
        ("ft:tiny:org::job-1", "fine-tuned", False), ("ft:tiny:org::job-1 + schema", "fine-tuned", True),
        ("tiny", "base, 2-shot", False), ("tiny + schema", "base, 2-shot", True)]
    sent = {(model, json.dumps(fmt), n) for e in endpoints.values() for model, fmt, n in e.formats}
    wanted = json.dumps(response_format(schema))
    assert json.loads(wanted)["json_schema"]["name"] == "restaurant_schema"
    assert sent == {("ft:tiny:org::job-1", "null", 2), ("ft:tiny:org::job-1", wanted, 2),  # its own short prompt
                    ("tiny", "null", 2 + 2 * 2), ("tiny", wanted, 2 + 2 * 2)}  # system, 2 shots, the question
    figures = {r.name: r.quality["json"] for r in report.models}
    assert [figures[n].mean for n in figures] == [0.75, 1.0, 0.0, 0.25]
    assert figures["tiny"].valid_json["value"] == 0.0 and figures["tiny + schema"].valid_json["value"] == 1.0
    assert figures["ft:tiny:org::job-1"].per_field["(other keys)"]["extra"] == 1
    assert figures["tiny + schema"].per_field["area"]["missing"] == 3
    assert [(c.fine_tuned, c.base) for c in report.comparisons] == [
        (t, b) for t in ("ft:tiny:org::job-1", "ft:tiny:org::job-1 + schema") for b in ("tiny", "tiny + schema")]

    written = EvalReport.model_validate(json.loads((tmp_path / "out" / "report.json").read_text()))
    assert written.models[3].name == "tiny + schema"
    assert written.models[0].quality["json"].fields["f1"]["value"] == pytest.approx(14 / 15)  # 7 right, 1 extra
    results = [json.loads(line) for line in (tmp_path / "out" / "results.jsonl").read_text().splitlines()]
    assert sum(r["constrained"] for r in results) == 8
    html = (tmp_path / "out" / "report.html").read_text()
    assert "F1 per field" in html and "Fields of tiny + schema" in html and "<svg" in html
    console = Console(record=True, width=200)
    print_summary(written, console)
    text = console.export_text()
    assert "structured output" in text and "F1 per field" in text and "tiny + schema" in text
    assert "ft:tiny:org::job-1: worst field (other keys)" in text


def test_a_bad_schema_file_is_named(tmp_path, scripted_endpoint):
    endpoint = scripted_endpoint({"tiny"}, {})
    data = write_jsonl(tmp_path / "test.jsonl", rows(TEST))
    for content, says in (("{nope", "not valid JSON"), ("[1]", "must be a JSON object")):
        (tmp_path / "s.json").write_text(content)
        with pytest.raises(SelftuneError, match=f"s.json: .*{says}"):
            evaluate(EvalConfig(data=data, models=["tiny"], base_url=endpoint.url, schema_file=tmp_path / "s.json",
                                out=tmp_path / "out"))
    with pytest.raises(SelftuneError, match="missing.json: can't read"):
        evaluate(EvalConfig(data=data, models=["tiny"], base_url=endpoint.url, schema_file=tmp_path / "missing.json",
                            out=tmp_path / "out"))


@pytest.mark.slow  # ~30 s on 2 shared cores: the server, the model, llguidance
def test_the_schema_row_of_a_real_model_is_always_valid_json(monkeypatch, service_env, tmp_path):
    """The selftune server and the tiny random model: unconstrained it writes noise; under the schema
    (llguidance) every answer is an object of the schema, graded field by field."""
    from selftune.api.app import create_app
    from selftune.config import get_settings
    from tests.helpers import ThreadedServer

    for name, value in service_env.items():
        monkeypatch.setenv(name, value)
    schema = tmp_path / "schema.json"
    schema.write_text(json.dumps({"type": "object", "properties": {"area": {"enum": ["riverside", "city centre"]},
                                                                   "familyFriendly": {"type": "boolean"}},
                                  "required": ["area", "familyFriendly"], "additionalProperties": False}))
    test = [(text, {"area": answer.get("area", "riverside"), "familyFriendly": True}) for text, answer in TEST]
    server = ThreadedServer(create_app(get_settings(), embedded_worker=False)).start()
    try:
        report = evaluate(EvalConfig(data=write_jsonl(tmp_path / "test.jsonl", rows(test)), models=["tiny"],
                                     few_shot=1, few_shot_from=write_jsonl(tmp_path / "train.jsonl", rows(TRAIN)),
                                     schema_file=schema, base_url=server.url, max_tokens=48, out=tmp_path / "out"))
    finally:
        server.stop()
    free, constrained = report.models
    assert (free.name, constrained.name, free.errors, constrained.errors) == ("tiny", "tiny + schema", 0, 0)
    assert constrained.quality["json"].valid_json["value"] == 1.0 > free.quality["json"].valid_json["value"]
    per_field = constrained.quality["json"].per_field
    assert list(per_field) == ["area", "familyFriendly"]
    assert all(f["right"] + f["wrong"] == 4 and f["missing"] == f["extra"] == 0 for f in per_field.values())


def test_the_demo_ends_with_one_summary_of_its_stories(four_rows):
    from selftune.demo import STORIES, Told, print_both

    config, report, _ = four_rows
    console = Console(record=True, width=250)
    print_both([Told(STORIES["restaurants"], config, report)], console)
    text = console.export_text()
    assert "what fine-tuning bought" in text and "tiny + schema" in text
    assert "75.0% (" in text and "exact object" in text  # the fine-tuned model's exact objects, 3 of 4
    assert f"restaurants report: {(config.out / 'report.html').resolve()}" in text
