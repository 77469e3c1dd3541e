"""Contract fuzzing (issue 18): schemathesis generates requests for every operation of the app's own
OpenAPI document and checks every answer against it: no 5xx, the declared status codes, content types
and schemas, and the hosted error shape on every 4xx. A stateful run follows the document's links, so
files, jobs, models and stored completions are reached with real ids.

In process (schemathesis drives the ASGI app, lifespan included), with two API keys configured so that
every request is authenticated as a real client's would be; the embedded worker is off (jobs stay
queued: their operations are exercised without training). Bounded: ``make test-fuzz`` takes a few minutes.
"""

from __future__ import annotations

import collections
import itertools
import json

import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.stateful import run_state_machine_as_test
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.python.asgi import shutdown_lifespans
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from selftune.api.app import create_app
from selftune.api.errors import ErrorBody

pytestmark = pytest.mark.fuzz

ORGS = 500  # one key and organisation each: every stateful scenario starts in an empty organisation
KEYS = ",".join(f"key-{i}:org-{i}" for i in range(ORGS))
AUTH = {"Authorization": "Bearer key-0"}
EXAMPLES = 200  # per operation and generation mode: the whole module stays within a few minutes
# "METHOD /path" of every operation of the document (building the app touches no disk and loads no model)
OPERATIONS = [f"{method.upper()} {path}"
              for path, operations in create_app(embedded_worker=False).openapi()["paths"].items()
              for method in operations]
ANSWERS = collections.Counter()  # (operation, status) -> how many: the run's figures, printed at its end


def tally(ctx, response, case) -> None:
    ANSWERS[(case.operation.label, response.status_code)] += 1


def error_shape(ctx, response, case) -> None:
    """Every 4xx, declared or not (a 405, say), carries ``{"error": {message, type, param, code}}``."""
    if 400 <= response.status_code < 500:
        ErrorBody.model_validate(json.loads(response.content))


CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance,
          error_shape, tally]
FUZZ = settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
                suppress_health_check=list(HealthCheck))


BASE_MODEL = "tiny"  # service_env's base model


def realistic(case, training: bytes, file_id: str | None = None) -> None:
    """Let a generated request reach further than a refusal: the base model this server offers instead of
    a random model name, and a valid training file instead of random bytes (no link can supply these:
    they come from the configuration, not from an earlier answer)."""
    body, label = case.body, case.operation.label
    if not isinstance(body, dict):
        return
    if label in ("POST /v1/chat/completions", "POST /v1/fine_tuning/jobs") and isinstance(body.get("model"), str):
        body["model"] = BASE_MODEL
    if label == "POST /v1/chat/completions" and body.get("model") == BASE_MODEL:
        # one short, seeded answer: generation is what takes time here, and a replayed case answers the same
        body.update(n=1, seed=0, max_tokens=4)
        body.pop("max_completion_tokens", None)
    if label == "POST /v1/responses" and isinstance(body.get("model"), str):
        body.update(model=BASE_MODEL, max_output_tokens=16)  # one short answer, as for chat completions
    if label == "POST /v1/fine_tuning/jobs" and file_id and isinstance(body.get("training_file"), str):
        body["training_file"] = file_id
    if label == "POST /v1/files" and body.get("purpose") == "fine-tune":
        body["file"] = training


@pytest.fixture
def training(chat_rows) -> bytes:
    return "".join(json.dumps(row) + "\n" for row in chat_rows(12)).encode()


@pytest.fixture
def api(monkeypatch, service_env):
    """The app's OpenAPI document, loaded from the running app (ORGS organisations' keys configured)."""
    from selftune.config import get_settings

    for name, value in {**service_env, "SELFTUNE_API_KEYS": KEYS}.items():
        monkeypatch.setenv(name, value)
    schema = schemathesis.openapi.from_asgi("/openapi.json", create_app(get_settings(), embedded_worker=False))
    yield schema
    shutdown_lifespans()  # the app's lifespan: services closed, its temporary SELFTUNE_HOME released


def real_ids(app, names: set[str], training: bytes) -> dict[str, str]:
    """Real ids for the path parameters ``names``, made through the API in key-0's organisation: so an
    operation on one object is fuzzed on an object that exists too, not only on random ids (404s)."""
    http = TestClient(app, headers=AUTH)  # no lifespan of its own: schemathesis's started the app's
    ids = {}
    if names & {"file_id", "fine_tuning_job_id"}:
        ids["file_id"] = http.post("/v1/files", files={"file": ("train.jsonl", training)},
                                   data={"purpose": "fine-tune"}).json()["id"]
    if "fine_tuning_job_id" in names:
        ids["fine_tuning_job_id"] = http.post("/v1/fine_tuning/jobs", json={
            "model": BASE_MODEL, "training_file": ids["file_id"]}).json()["id"]
    if "completion_id" in names:
        ids["completion_id"] = http.post("/v1/chat/completions", json={
            "model": BASE_MODEL, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2, "store": True,
            "metadata": {"run": "fuzz"}}).json()["id"]
    if "response_id" in names:
        ids["response_id"] = http.post("/v1/responses", json={
            "model": BASE_MODEL, "input": "hi", "max_output_tokens": 16}).json()["id"]
    if "batch_id" in names:
        line = {"custom_id": "a", "method": "POST", "url": "/v1/chat/completions",
                "body": {"model": BASE_MODEL, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2}}
        batch_file = http.post("/v1/files", files={"file": ("batch.jsonl", json.dumps(line).encode() + b"\n")},
                               data={"purpose": "batch"}).json()["id"]
        ids["batch_id"] = http.post("/v1/batches", json={
            "input_file_id": batch_file, "endpoint": "/v1/chat/completions", "completion_window": "24h"}).json()["id"]
    if "model" in names:
        ids["model"] = BASE_MODEL
    return {name: ids[name] for name in names if name in ids}


@pytest.mark.parametrize("label", OPERATIONS)
def test_every_operation_keeps_its_contract(api, label, training):
    """Valid requests (positive) and requests that break the schema (negative), up to EXAMPLES in all;
    an operation on one object also gets valid requests naming a real one.

    (Not ``schemathesis.pytest.from_fixture``: it fails on pytest 9, reading ``Function._nodeid``.)"""
    operation = api.find_operation_by_label(label)
    strategy = operation.as_strategy(GenerationMode.POSITIVE) | operation.as_strategy(GenerationMode.NEGATIVE)
    names = {p.name for p in operation.path_parameters}
    ids = real_ids(api.app, names | ({"file_id"} if label == "POST /v1/fine_tuning/jobs" else set()), training)
    if names and names <= ids.keys():
        strategy |= operation.as_strategy(GenerationMode.POSITIVE, path_parameters={n: ids[n] for n in names})

    @FUZZ
    @given(case=strategy, real=st.booleans())
    def fuzz(case, real):
        if real:
            realistic(case, training, ids.get("file_id"))
        case.call_and_validate(headers=AUTH, checks=CHECKS)

    fuzz()


def test_stateful_runs_through_the_links_keep_the_contract(api, training):
    """Scenarios of up to 10 calls, each answer's links giving the next call its ids. Each scenario runs in
    an organisation of its own: one that starts empty, as Hypothesis needs when it replays a scenario."""
    scenarios = itertools.count(1)
    api.config.generation.update(modes=[GenerationMode.POSITIVE])  # the stateless test sends the negative ones

    class Workflow(api.as_state_machine()):
        def setup(self):
            self.auth = {"Authorization": f"Bearer key-{next(scenarios) % ORGS}"}

        def before_call(self, case):
            realistic(case, training)

        def get_call_kwargs(self, case):
            return {"headers": self.auth}

        def validate_response(self, response, case, additional_checks=None, **kwargs):
            case.validate_response(response, checks=CHECKS, transport_kwargs=kwargs)

    run_state_machine_as_test(Workflow, settings=settings(FUZZ, max_examples=EXAMPLES, stateful_step_count=10))


def teardown_module():
    """The figures (``pytest -m fuzz -s`` shows them): requests, answers by status, operations never 2xx."""
    statuses = collections.Counter()
    for (_, status), n in ANSWERS.items():
        statuses[status] += n
    succeeded = {label for (label, status), n in ANSWERS.items() if status < 300}
    print(f"\nfuzz: {sum(statuses.values())} requests to {len({label for label, _ in ANSWERS})} operations; "
          f"answers {dict(sorted(statuses.items()))}; never 2xx: {sorted(set(OPERATIONS) - succeeded) or 'none'}")
