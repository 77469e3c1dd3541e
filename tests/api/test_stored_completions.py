"""Stored completions through the openai SDK: store, list with filters and pages, read, update,
delete, and one organisation never seeing another's."""

from __future__ import annotations

import openai
import pytest

QUESTION = [{"role": "system", "content": "Answer briefly."}, {"role": "user", "content": "Where is my card?"}]


def ask(client, store=True, stream=False, **kwargs):
    kwargs = {"model": "tiny", "messages": QUESTION, "max_tokens": 4, "temperature": 0, **kwargs}
    if not stream:
        return client.chat.completions.create(store=store, **kwargs)
    chunks = list(client.chat.completions.create(store=store, stream=True, **kwargs))
    return chunks[0].id


def test_store_list_filter_read_update_and_delete(client):
    first = ask(client, metadata={"task": "cards", "run": "1"})
    streamed_id = ask(client, stream=True, metadata={"task": "cards", "run": "2"})
    other = ask(client, metadata={"task": "fees"})
    ask(client, store=False, metadata={"task": "cards"})  # not stored
    everything = list(client.chat.completions.list())
    assert [c.id for c in everything] == [first.id, streamed_id, other.id]  # oldest first, as hosted
    assert [c.id for c in client.chat.completions.list(order="desc")] == [other.id, streamed_id, first.id]
    cards = list(client.chat.completions.list(metadata={"task": "cards"}))
    assert [c.id for c in cards] == [first.id, streamed_id]
    assert [c.id for c in client.chat.completions.list(metadata={"task": "cards", "run": "2"})] == [streamed_id]
    assert list(client.chat.completions.list(model="no-such-model")) == []
    page = client.chat.completions.list(limit=2)
    assert [c.id for c in page.data] == [first.id, streamed_id] and page.has_more
    assert [c.id for c in client.chat.completions.list(limit=2, after=streamed_id).data] == [other.id]

    stored = client.chat.completions.retrieve(first.id)
    assert stored.choices[0].message.content == first.choices[0].message.content
    assert stored.usage.total_tokens == first.usage.total_tokens and stored.model == "tiny"
    assert stored.metadata == {"task": "cards", "run": "1"} and stored.temperature == 0
    streamed = client.chat.completions.retrieve(streamed_id)
    assert streamed.choices[0].finish_reason in ("stop", "length") and streamed.usage.completion_tokens >= 1
    assert streamed.choices[0].message.content == first.choices[0].message.content  # same greedy answer

    messages = list(client.chat.completions.messages.list(first.id))
    assert [(m.role, m.content) for m in messages] == [(m["role"], m["content"]) for m in QUESTION]
    assert len({m.id for m in messages}) == 2

    updated = client.chat.completions.update(first.id, metadata={"task": "cards", "reviewed": "yes"})
    assert updated.metadata == {"task": "cards", "reviewed": "yes"}
    assert [c.id for c in client.chat.completions.list(metadata={"reviewed": "yes"})] == [first.id]

    deleted = client.chat.completions.delete(first.id)
    assert deleted.deleted and deleted.id == first.id and deleted.object == "chat.completion.deleted"
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.retrieve(first.id)
    assert [c.id for c in client.chat.completions.list()] == [streamed_id, other.id]


def test_bad_metadata_is_refused(client):
    with pytest.raises(openai.BadRequestError) as info:
        ask(client, metadata={f"k{i}": "v" for i in range(17)})
    assert info.value.param == "metadata"
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.list(order="sideways")
    assert info.value.param == "order"


def test_organisations_never_see_each_others_stored_completions(org_client):
    alice, bob = org_client("key-a"), org_client("key-b")
    mine = ask(alice, metadata={"task": "cards"})
    assert list(bob.chat.completions.list()) == []
    assert list(bob.chat.completions.list(metadata={"task": "cards"})) == []
    for call in (lambda: bob.chat.completions.retrieve(mine.id), lambda: bob.chat.completions.delete(mine.id),
                 lambda: list(bob.chat.completions.messages.list(mine.id)),
                 lambda: bob.chat.completions.update(mine.id, metadata={"x": "y"})):
        with pytest.raises(openai.NotFoundError):
            call()
    assert [c.id for c in alice.chat.completions.list()] == [mine.id]
