"""``evaluate()`` with a base URL and key per model (what the migration's compare needs): each model's
requests go to its own endpoint with its own key; models without one use the run's."""

from __future__ import annotations

import json

from selftune.evals import EvalConfig, EvalReport, ModelEndpoint, evaluate
from tests.conftest import write_jsonl

ROWS = [{"messages": [{"role": "user", "content": f"q{i}"}, {"role": "assistant", "content": "yes" if i % 2 else "no"}]}
        for i in range(8)]


def test_each_model_is_asked_at_its_own_endpoint_with_its_own_key(scripted_endpoint, tmp_path):
    right = {f"q{i}": ("yes" if i % 2 else "no") for i in range(8)}
    here = scripted_endpoint({"ft:tiny:org::job-1", "tiny"}, right)
    hosted = scripted_endpoint({"old-model"}, {f"q{i}": "yes" for i in range(8)})  # right half the time
    data = write_jsonl(tmp_path / "test.jsonl", ROWS)
    report = evaluate(EvalConfig(
        data=data, base_url=here.url, api_key="here-key", concurrency=2, out=tmp_path / "out",
        models=["ft:tiny:org::job-1", ModelEndpoint(model="old-model", base_url=hosted.url, api_key="hosted-key"),
                ModelEndpoint(model="tiny", base_url=here.url)]))
    assert {(model, key) for model, key, _ in here.asked} == {("ft:tiny:org::job-1", "Bearer here-key"),
                                                              ("tiny", "Bearer here-key")}  # the run's key
    assert {(model, key) for model, key, _ in hosted.asked} == {("old-model", "Bearer hosted-key")}
    tuned, old, tiny = report.models
    assert (tuned.endpoint, old.endpoint, tiny.endpoint) == (here.url, hosted.url, here.url)
    assert report.grader == "classification" and report.endpoint == here.url
    assert (tuned.quality["classification"].mean, old.quality["classification"].mean) == (1.0, 0.5)
    assert old.quality["classification"].confusion.matrix == [[0, 4], [0, 4]]
    assert [c.base for c in report.comparisons] == ["old-model", "tiny"]
    assert report.comparisons[0].quality_gain == 0.5
    written = json.loads((tmp_path / "out" / "report.json").read_text())
    assert EvalReport.model_validate(written).models[1].endpoint == hosted.url
    assert written["models"][1]["quality"]["classification"]["confusion"]["matrix"] == [[0, 4], [0, 4]]


def test_no_local_server_is_started_when_every_model_has_its_own_endpoint(scripted_endpoint, tmp_path):
    hosted = scripted_endpoint({"old-model"}, {}, failing=frozenset({"q1"}))
    report = evaluate(EvalConfig(data=write_jsonl(tmp_path / "test.jsonl", ROWS), out=tmp_path / "out",
                                 models=[ModelEndpoint(model="old-model", base_url=hosted.url)]))
    assert report.endpoint is None and not (tmp_path / "out" / "server.log").exists()
    (old,) = report.models
    assert old.errors == 1 and old.requests == 8  # the failed request is graded as wrong, not dropped
    rows = [json.loads(line) for line in (tmp_path / "out" / "results.jsonl").read_text().splitlines()]
    assert [r["error"] is not None for r in rows] == [i == 1 for i in range(8)]
