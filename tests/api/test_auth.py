"""Isolation between API keys: every file, job and model belongs to the key's organisation; another
key sees none of them (404, as if absent), can't train on them or chat with them, and an unknown key is
refused. (Stored completions: tests/api/test_stored_completions.py.)"""

from __future__ import annotations

import openai
import pytest


def test_two_keys_do_not_see_each_other(org_client, tmp_path, chat_rows, upload, wait_for):
    alice, bob = org_client("key-a"), org_client("key-b")
    training = upload(alice, tmp_path / "a.jsonl", chat_rows(12))
    job = alice.fine_tuning.jobs.create(model="tiny", training_file=training.id, suffix="mine")
    assert job.organization_id == "org-a"

    assert list(bob.files.list()) == [] and list(bob.fine_tuning.jobs.list()) == []
    for call in (lambda: bob.files.retrieve(training.id), lambda: bob.files.content(training.id),
                 lambda: bob.files.delete(training.id), lambda: bob.fine_tuning.jobs.retrieve(job.id),
                 lambda: bob.fine_tuning.jobs.cancel(job.id), lambda: bob.fine_tuning.jobs.list_events(job.id),
                 lambda: bob.fine_tuning.jobs.checkpoints.list(job.id)):
        with pytest.raises(openai.NotFoundError):  # as if it did not exist, not 403
            call()
    with pytest.raises(openai.BadRequestError) as info:  # nor can bob train on alice's file
        bob.fine_tuning.jobs.create(model="tiny", training_file=training.id)
    assert info.value.param == "training_file"

    job = wait_for(alice, job.id)
    assert job.status == "succeeded", job.error
    assert job.fine_tuned_model.startswith("ft:tiny:org-a:mine:")
    hello = [{"role": "user", "content": "Where is my new card?"}]
    assert alice.chat.completions.create(model=job.fine_tuned_model, messages=hello, max_tokens=2).choices
    with pytest.raises(openai.NotFoundError):  # nor can bob chat with alice's model
        bob.chat.completions.create(model=job.fine_tuned_model, messages=hello, max_tokens=2)
    assert job.fine_tuned_model in [m.id for m in alice.models.list()]
    assert job.fine_tuned_model not in [m.id for m in bob.models.list()]
    for call in (lambda: bob.models.retrieve(job.fine_tuned_model), lambda: bob.models.delete(job.fine_tuned_model)):
        with pytest.raises(openai.NotFoundError):
            call()
    alice.files.retrieve(training.id)  # still there: bob's delete did nothing

    with pytest.raises(openai.AuthenticationError):
        org_client("wrong-key").files.list()
