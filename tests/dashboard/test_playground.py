"""The playground in-process: the page (columns prefilled from the address, every model offered, names
escaped) and ``/playground/chat``, which streams the chat service's own answer for the viewer's
organisation, or the API's error body naming the field, and needs the CSRF token."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from tests.helpers import XSS, csrf_of

STATIC = Path(__file__).resolve().parents[2] / "src" / "selftune" / "dashboard" / "static"
HELLO = [{"role": "system", "content": "Answer briefly."}, {"role": "user", "content": "Where is my new card?"}]


@pytest.fixture
def playground(dashboard):
    """(page, post, connect): a browser on the playground, ``post(body, token=True)`` one column's request."""
    with dashboard() as (browser, connect):
        page = browser()
        token = csrf_of(page.get("/playground"))

        def post(body, token_ok: bool = True, headers: dict | None = None):
            sent = {"X-CSRF-Token": token} if token_ok else {}
            return page.post("/playground/chat", json=body, headers={**sent, **(headers or {})})

        yield page, post, connect


def events(answer) -> list:
    """The data of each server-sent event, parsed (``[DONE]`` as a string)."""
    assert answer.headers["content-type"].startswith("text/event-stream"), answer.text
    found = [block.removeprefix("data: ") for block in answer.text.split("\n\n") if block.startswith("data: ")]
    return [item if item == "[DONE]" else json.loads(item) for item in found]


def error_of(answer) -> dict:
    assert answer.headers["content-type"].startswith("application/json"), answer.text
    return answer.json()["error"]


def test_the_page_prefills_its_columns_from_the_address_and_escapes_names(playground):
    page, _, _ = playground
    default = page.get("/playground")
    assert default.status_code == 200 and "connect-src 'self'" in default.headers["content-security-policy"]
    columns = re.findall(r'<section class="column" data-index="(\d)" data-state="idle"( hidden)?>', default.text)
    assert [hidden for _, hidden in columns] == ["", "", " hidden", " hidden"]  # 2 shown, up to 4
    assert '<option value="tiny" selected>tiny</option>' in default.text
    assert '<script src="/static/playground.js" defer></script>' in default.text

    chosen = page.get("/playground", params=[("model", XSS), ("model", "tiny"), ("model", "tiny")])
    assert "<img" not in chosen.text
    assert "Not listed for this organisation" in chosen.text
    assert 'value="&lt;img src=x onerror=alert(1)&gt;" selected' in chosen.text
    columns = re.findall(r'<section class="column" data-index="(\d)" data-state="idle"( hidden)?>', chosen.text)
    assert [hidden for _, hidden in columns] == ["", "", "", " hidden"]
    five = page.get("/playground", params=[("model", "tiny")] * 6)
    assert five.text.count('<section class="column"') == 4


def test_a_column_streams_the_chat_services_answer_with_usage(playground):
    _, post, connect = playground
    body = {"model": "tiny", "messages": HELLO, "temperature": 0, "max_tokens": 6}
    answer = post(body)
    assert answer.status_code == 200 and answer.headers["cache-control"] == "no-store"
    data = events(answer)
    assert data[-1] == "[DONE]"
    chunks = data[:-1]
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant" and chunks[0]["model"] == "tiny"
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])
    usage = chunks[-1]["usage"]
    assert chunks[-1]["choices"] == [] and usage["prompt_tokens"] > 5 and 1 <= usage["completion_tokens"] <= 6
    whole = connect().chat.completions.create(model="tiny", messages=HELLO, temperature=0, max_tokens=6)
    assert text == whole.choices[0].message.content  # the API's own answer
    assert usage == whole.usage.model_dump(include={"prompt_tokens", "completion_tokens", "total_tokens"})


def test_a_json_schema_from_the_text_area_constrains_the_answer(playground):
    _, post, _ = playground
    schema = {"type": "object", "properties": {"intent": {"enum": ["card", "refund"]}}, "required": ["intent"],
              "additionalProperties": False}
    data = events(post({"model": "tiny", "messages": HELLO, "max_tokens": 30, "temperature": 0,
                        "json_schema": json.dumps(schema)}))
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in data[:-1] if c["choices"])
    finish = [c["choices"][0]["finish_reason"] for c in data[:-1] if c["choices"] and c["choices"][0]["finish_reason"]]
    if finish == ["stop"]:
        assert json.loads(text)["intent"] in ("card", "refund")
    else:
        assert text.lstrip().startswith("{")


@pytest.mark.parametrize(("body", "status", "param", "words"), [
    ({"model": "ft:tiny:local::nope", "messages": HELLO}, 404, "model", "No such model"),
    ({"model": XSS, "messages": HELLO}, 404, "model", "No such model"),
    ({"model": "tiny", "messages": HELLO, "json_schema": '{"type": "object",'}, 400, "json_schema",
     "JSON schema: not valid JSON at line 1"),
    ({"model": "tiny", "messages": HELLO, "json_schema": "[1, 2]"}, 400, "json_schema", "must be a JSON object"),
    ({"model": "tiny", "messages": HELLO, "json_schema": '{"name": "bad name!", "schema": {}}'}, 400,
     "response_format.json_schema.name", "letters, digits"),
    ({"model": "tiny", "messages": HELLO, "temperature": 5}, 400, "temperature", "less than or equal to 2"),
    ({"model": "tiny", "messages": []}, 400, "messages", "at least 1"),
    ({"model": "tiny", "messages": [{"role": "robot", "content": "hi"}]}, 400, "messages.0.role", "messages.0.role"),
    ({"messages": HELLO}, 400, "model", "model: Field required"),
    ({"model": "tiny", "messages": HELLO, "max_tokens": 100_000}, 400, "messages", "maximum context length"),
    ({"model": "tiny", "messages": HELLO, "tools": []}, 400, "tools", "Unrecognized field: tools"),
    (["not", "an", "object"], 400, None, "must be a JSON object"),
])
def test_a_refused_request_is_the_apis_error_naming_the_field(playground, body, status, param, words):
    _, post, _ = playground
    answer = post(body)
    assert answer.status_code == status
    error = error_of(answer)
    assert error["param"] == param and words in error["message"], error
    assert "Traceback" not in answer.text


def test_a_post_without_the_token_or_from_another_site_is_refused(playground):
    page, post, _ = playground
    body = {"model": "tiny", "messages": HELLO, "max_tokens": 2}
    assert post(body, token_ok=False).status_code == 403
    assert page.post("/playground/chat", json=body, headers={"X-CSRF-Token": "forged"}).status_code == 403
    assert post(body, headers={"Origin": "https://evil.example"}).status_code == 403
    token = csrf_of(page.get("/playground"))
    broken = page.post("/playground/chat", content=b"{", headers={"X-CSRF-Token": token,
                                                                  "Content-Type": "application/json"})
    assert broken.status_code == 400 and "must be a JSON object" in error_of(broken)["message"]


def test_answers_only_ever_reach_the_page_as_text():
    script = (STATIC / "playground.js").read_text()
    assert "innerHTML" not in script and "insertAdjacentHTML" not in script and "outerHTML" not in script
    assert "createTextNode(text)" in script
