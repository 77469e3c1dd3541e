"""Fine-tuning a fine-tuned model, through the openai SDK against a server process with two organisations:
training continues from the first model's adapter (the second job's first loss is the first job's last,
not the base model's), on the same base (the new id names it), and only in the organisation that owns it;
a DPO job's reference model is the fine-tuned model it starts from."""

from __future__ import annotations

import math

import openai
import pytest

from tests.helpers import TWO_KEYS

pytestmark = pytest.mark.slow

ROWS = 10
# one example, repeated: every step's loss is on the same tokens, so losses of two jobs compare without noise
SAME = 30
SETTINGS = {"n_epochs": 2, "batch_size": 1, "learning_rate_multiplier": 10}


@pytest.fixture(scope="module")
def server(new_server):
    srv = new_server(SELFTUNE_API_KEYS=TWO_KEYS).start()
    yield srv
    srv.stop()


def _losses(client, job_id: str) -> list[float]:
    """train_loss of each step, in step order."""
    events = client.fine_tuning.jobs.list_events(job_id, limit=100)  # iterating pages through them all
    steps = {e.data["step"]: e.data["train_loss"] for e in events if e.type == "metrics" and "train_loss" in e.data}
    return [steps[s] for s in sorted(steps)]


def _train(client, model: str, training_file: str, wait_for, hyperparameters=SETTINGS, suffix: str | None = None):
    job = client.fine_tuning.jobs.create(model=model, training_file=training_file, seed=1, suffix=suffix,
                                         hyperparameters=hyperparameters)
    done = wait_for(client, job.id, timeout=300)
    assert done.status == "succeeded", done.error
    return done


def test_a_second_generation_starts_from_the_first_models_weights(server, upload, wait_for, chat_rows, tmp_path):
    client = server.client("key-a")
    training = upload(client, tmp_path / "train.jsonl", chat_rows(1) * SAME)
    first = _train(client, "tiny", training.id, wait_for, suffix="gen1")
    second = _train(client, first.fine_tuned_model, training.id, wait_for, suffix="gen2")

    first_losses, second_losses = _losses(client, first.id), _losses(client, second.id)
    start, end, again = first_losses[0], first_losses[-1], second_losses[0]
    print(f"\nfirst job: loss {start:.3f} -> {end:.3f}; second job starts at {again:.3f}")
    assert start - end > 0.5  # the first job moved well away from the base model
    assert abs(again - end) < 0.1 * (start - end)  # continued from it (one step further on), not from the base
    assert second.model == first.fine_tuned_model
    assert second.fine_tuned_model == f"ft:tiny:org-a:gen2:{second.id.removeprefix('ftjob-')}"  # names the base

    # DPO from the second model: its reference is that model too, so at the first step policy == reference and
    # the loss is ln 2 (with the base as reference it was 0.49 here: the model already prefers its answer)
    row = chat_rows(1)[0]["messages"]
    pairs = [{"input": {"messages": row[:2]}, "preferred_output": [row[2]],
              "non_preferred_output": [{"role": "assistant", "content": "refund"}]}] * 12
    preferences = upload(client, tmp_path / "pairs.jsonl", pairs)
    job = client.fine_tuning.jobs.create(model=second.fine_tuned_model, training_file=preferences.id, seed=1,
                                         method={"type": "dpo", "dpo": {"hyperparameters": {"n_epochs": 1,
                                                                                            "batch_size": 1}}})
    assert wait_for(client, job.id, timeout=300).status == "succeeded"
    assert _losses(client, job.id)[0] == pytest.approx(math.log(2), abs=0.01)

    answer = client.chat.completions.create(model=second.fine_tuned_model, max_tokens=2,
                                            messages=[{"role": "user", "content": "question: about refund"}])
    assert answer.model == second.fine_tuned_model


def test_a_checkpoint_continues_in_its_own_organisation_only(server, upload, wait_for, chat_rows, tmp_path):
    a, b = server.client("key-a"), server.client("key-b")
    first = _train(a, "tiny", upload(a, tmp_path / "a.jsonl", chat_rows(ROWS)).id, wait_for,
                   hyperparameters={"n_epochs": 2, "batch_size": 2})
    checkpoint = next(iter(a.fine_tuning.jobs.checkpoints.list(first.id))).fine_tuned_model_checkpoint
    training_b = upload(b, tmp_path / "b.jsonl", chat_rows(ROWS, seed=1)).id
    for model in (first.fine_tuned_model, checkpoint, "ft:tiny:org-b::nosuchjob"):
        with pytest.raises(openai.NotFoundError) as missing:
            b.fine_tuning.jobs.create(model=model, training_file=training_b)
        assert (missing.value.code, missing.value.param) == ("model_not_found", "model")

    training_a = upload(a, tmp_path / "a2.jsonl", chat_rows(ROWS, seed=2)).id
    again = _train(a, checkpoint, training_a, wait_for, hyperparameters={"n_epochs": 1, "batch_size": 2})
    assert again.model == checkpoint
    assert again.fine_tuned_model.startswith("ft:tiny:org-a::")
