"""The migration's rules, without a server: the plan file, endpoints, prices, and where replay's
training data comes from."""

from __future__ import annotations

import json

import pytest

from selftune.errors import SelftuneError
from selftune.migrate.compare import split_endpoint
from selftune.migrate.hosted import HOSTED_BASE_URL, fine_tuned_price
from selftune.migrate.plan import FileRecord, JobRecord, Plan, load_plan, save_plan
from selftune.migrate.replay import _data_for


def job(**fields) -> JobRecord:
    return JobRecord(**{"id": "ftjob-1", "status": "succeeded", "model": "gpt-4o-mini-2024-07-18", "created_at": 1,
                        "training_file": "file-1", "replay": True, **fields})


def test_plan_round_trip_and_errors_name_the_file(tmp_path):
    plan = Plan(source_base_url=HOSTED_BASE_URL, created_at=1, jobs=[job(fine_tuned_model="ft:gpt-4o-mini:acme::x")],
                files={"file-1": FileRecord(id="file-1", on_service=False)})
    save_plan(plan, tmp_path / "plan.json")
    assert load_plan(tmp_path / "plan.json") == plan
    assert plan.jobs_of_model("ft:gpt-4o-mini:acme::x")[0].id == "ftjob-1"
    with pytest.raises(SelftuneError, match="no job 'ftjob-2'"):
        plan.job("ftjob-2")
    with pytest.raises(SelftuneError, match="no such plan file"):
        load_plan(tmp_path / "missing.json")
    (tmp_path / "bad.json").write_text('{"jobs": [\n')
    with pytest.raises(SelftuneError, match=r"bad.json:2: not valid JSON"):
        load_plan(tmp_path / "bad.json")
    raw = json.loads((tmp_path / "plan.json").read_text())
    raw["jobs"][0]["replay"] = "maybe"
    (tmp_path / "edited.json").write_text(json.dumps(raw))
    with pytest.raises(SelftuneError, match=r"edited.json: jobs.0.replay"):
        load_plan(tmp_path / "edited.json")


def test_split_endpoint():
    assert split_endpoint("ft:gpt-4o-mini:acme::x@http://127.0.0.1:9/v1") == ("ft:gpt-4o-mini:acme::x",
                                                                              "http://127.0.0.1:9/v1")
    assert split_endpoint("ft:gpt-4o-mini:acme::x") == ("ft:gpt-4o-mini:acme::x", HOSTED_BASE_URL)
    with pytest.raises(SelftuneError, match="MODEL@URL"):
        split_endpoint("model@not-a-url")


@pytest.mark.parametrize(("model", "prices"), [
    ("ft:gpt-4.1-nano-2025-04-14:acme:intents:abc", (0.20, 0.80)),  # not gpt-4.1's price: longest prefix wins
    ("ft:gpt-4.1-2025-04-14:acme::abc:ckpt-step-10", (3.00, 12.00)),
    ("ft:gpt-4o-mini-2024-07-18:acme::abc", (0.30, 1.20)),
    ("gpt-4o-2024-08-06", (3.75, 15.00)),
])
def test_fine_tuned_list_prices(model, prices):
    price = fine_tuned_price(model)
    assert (price.input_per_million, price.output_per_million) == prices
    assert price.name.endswith("fine-tune list price")


def test_unknown_model_has_no_price():
    assert fine_tuned_price("ft:llama-3:acme::x") is None


def test_replay_data_order_local_copy_then_captured_then_refusal(tmp_path):
    local, captured = tmp_path / "intents.jsonl", tmp_path / "captured.jsonl"
    local.write_text("{}\n")
    captured.write_text("{}\n")
    plan = Plan(source_base_url=HOSTED_BASE_URL, created_at=1,
                files={"file-1": FileRecord(id="file-1", filename="intents.jsonl", on_service=True,
                                            local_copy=str(local))})
    record = job(captured_file=str(captured), fine_tuned_model="ft:x")
    assert _data_for(plan, record, "file-1", None, tmp_path / "plan.json", training=True) == local
    plan.files["file-1"].local_copy = None
    assert _data_for(plan, record, "file-1", None, tmp_path / "plan.json", training=True) == captured
    record.captured_file = None
    with pytest.raises(SelftuneError, match=r"not downloadable from the service and has no local copy.*"
                                            r"migrate capture --model ft:x --plan"):
        _data_for(plan, record, "file-1", None, tmp_path / "plan.json", training=True)
    assert _data_for(plan, record, "file-1", None, tmp_path / "plan.json", training=False) is None
