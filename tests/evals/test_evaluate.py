"""``evaluate()`` with a base URL and key per model (what the migration's compare needs): each model's
requests go to its own endpoint with its own key; models without one use the run's."""

from __future__ import annotations

import json

from selftune.evals import EvalConfig, EvalReport, ModelEndpoint, evaluate
from tests.helpers import write_jsonl

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


def test_agreement_with_an_old_model_and_its_per_token_price(scripted_endpoint, tmp_path):
    """The migration's compare: an old hosted model (billed per token) and a new local one (billed by
    machine time) on the same prompts; agreement counts the examples where their answers match."""
    from selftune.evals.prices import TokenPrice

    old_answers = {f"q{i}": "yes" for i in range(8)}
    new_answers = {f"q{i}": ("Yes." if i < 6 else "no") for i in range(8)}  # agrees on 6 of 8 (case, dot ignored)
    hosted = scripted_endpoint({"ft:old"}, old_answers)
    here = scripted_endpoint({"ft:new"}, new_answers)
    price = TokenPrice(name="hosted-ft", input_per_million=1.0, output_per_million=4.0)
    report = evaluate(EvalConfig(
        data=write_jsonl(tmp_path / "test.jsonl", ROWS), out=tmp_path / "out", agreement_with="ft:old",
        models=[ModelEndpoint(model="ft:old", base_url=hosted.url, price=price),
                ModelEndpoint(model="ft:new", base_url=here.url)]))
    (agreed,) = report.agreements
    assert (agreed.model, agreed.with_model, agreed.share) == ("ft:new", "ft:old", 0.75)
    assert agreed.ci95[0] < 0.75 < agreed.ci95[1]
    old, new = report.models
    assert old.cost_basis == "hosted-ft" and old.own_cost == price.per_thousand_requests(7, 2)
    assert new.cost_basis == "local" and new.own_cost == new.cost_per_1000["local"] > 0
    assert "gives the same answer as ft:old on 75.0%" in (tmp_path / "out" / "report.html").read_text()


def test_agreement_with_must_name_a_model_of_the_run(tmp_path):
    import pydantic
    import pytest

    with pytest.raises(pydantic.ValidationError, match="not one of the models"):
        EvalConfig(data=tmp_path / "t.jsonl", models=["a", "b"], agreement_with="c")
    with pytest.raises(pydantic.ValidationError, match="named twice"):
        EvalConfig(data=tmp_path / "t.jsonl", models=["a", "a"])
