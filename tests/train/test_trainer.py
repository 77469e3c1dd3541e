"""Whole training runs on the tiny model: output folder, learning, resuming, checkpoints, time budget, export."""

from __future__ import annotations

import csv
import hashlib
import json
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from selftune.errors import SelftuneError
from selftune.models.tokenizer import load_tokenizer
from selftune.train import TrainConfig, events, run
from selftune.train.batching import epoch_steps
from selftune.train.checkpoint import list_checkpoints
from selftune.train.dataset import load_training_file
from selftune.train.hyperparams import learning_rate_at
from selftune.train.trainer import ResumeMismatch, Trainer
from tests.helpers import TINY_CONTEXT, write_jsonl
from tests.train.helpers import chat_rows, config


def read_results(out: Path) -> list[dict]:
    with open(out / "results.csv", newline="") as f:
        return list(csv.DictReader(f))


def read_events(path: Path) -> list[dict]:
    """Every line read with the event classes the worker's relay reads them with."""
    return [event.model_dump() for event in events.read_events(path)]


def test_a_run_writes_the_output_folder(tmp_path, tiny_model):
    """The files the hosted service's users expect, with the numbers consistent with each other."""
    cfg = config(tmp_path, tiny_model, events_file=tmp_path / "events.jsonl")
    result = run(cfg)
    out = cfg.out
    assert result.status == "succeeded"
    for name in ("adapter_model.safetensors", "adapter_config.json", "tokenizer.json", "tokenizer_config.json",
                 "results.csv", "training.json"):
        assert (out / name).is_file(), name
    assert list_checkpoints(out)[-1].name == f"step-{result.state.global_step:06d}"
    assert (list_checkpoints(out)[-1] / "adapter_model.safetensors").is_file()

    # the step count follows from the data: independent recomputation of the epochs' steps
    record = json.loads((out / "training.json").read_text())
    tokenizer = load_tokenizer(str(tiny_model))
    lengths = [len(s) for s in load_training_file(cfg.train_file, tokenizer, "sft", TINY_CONTEXT).sequences]
    per_epoch = [len(epoch_steps(lengths, record["data"]["tokens_per_step"], 0, e)) for e in range(2)]
    assert record["data"]["tokens_per_step"] == round(4 * sum(lengths) / len(lengths))
    assert record["steps"] == result.state.global_step == sum(per_epoch)

    lines = (out / "results.csv").read_text().splitlines()
    assert lines[0] == "step,train_loss,train_accuracy,valid_loss,valid_mean_token_accuracy"
    rows = read_results(out)
    assert [int(r["step"]) for r in rows] == list(range(1, sum(per_epoch) + 1))
    epoch_ends = {per_epoch[0], per_epoch[0] + per_epoch[1]}
    for row in rows:
        assert float(row["train_loss"]) > 0 and 0 <= float(row["train_accuracy"]) <= 1
        filled = row["valid_loss"] != ""
        assert filled == (int(row["step"]) in epoch_ends), row
        assert filled == (row["valid_mean_token_accuracy"] != "")

    assert record["status"] == "succeeded" and record["base_model"] == str(tiny_model)
    assert record["method"] == "supervised" and record["adapter"] == "lora"
    assert {k: record["hyperparameters"][k] for k in ("n_epochs", "batch_size", "learning_rate")} == {
        "n_epochs": 2, "batch_size": 4, "learning_rate": 1e-3}
    for key, path in (("train_file", cfg.train_file), ("valid_file", cfg.valid_file)):
        assert record["data"][key]["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
        assert record["data"][key]["examples"] == (12 if key == "train_file" else 10)
    assert record["final_metrics"]["valid_loss"] == pytest.approx(float(rows[-1]["valid_loss"]), rel=1e-5)
    assert record["epochs_completed"] == 2
    assert record["trained_tokens"] == 2 * record["data"]["train_file"]["tokens"]  # hosted meaning: tokens processed
    example = record["example"]
    trained = [span["text"] for span in example["spans"] if span["trained"]]
    assert trained == ["label_0<|im_end|>"] and example["line"] == 1
    assert "".join(span["text"] for span in example["spans"]) == tokenizer.decode(
        load_training_file(cfg.train_file, tokenizer, "sft", TINY_CONTEXT).sequences[0].input_ids)

    events = read_events(tmp_path / "events.jsonl")
    kinds = [e["type"] for e in events]
    assert kinds[0] == "start" and {"step", "eval", "checkpoint"} <= set(kinds)
    assert [e["step"] for e in events if e["type"] == "step"] == list(range(1, sum(per_epoch) + 1))
    assert sorted({e["step"] for e in events if e["type"] == "eval"}) == sorted(epoch_ends)
    assert events[0]["total_steps"] == sum(per_epoch) and events[0]["examples"] == 12


def test_training_teaches_the_model_to_stop(tmp_path, tiny_model):
    """The end-of-turn token is trained, so a fine-tuned model answers and then stops generating."""
    from transformers import AutoModelForCausalLM

    rows = [{"messages": [{"role": "user", "content": f"question {i}"}, {"role": "assistant", "content": "ok"}]}
            for i in range(20)]
    train_file = write_jsonl(tmp_path / "train.jsonl", rows)
    # the tiny random model's logits are tiny (hidden size 64, tied embeddings): only a full fine-tune
    # at the highest learning rate moves them far enough in a few hundred steps
    cfg = TrainConfig(model=str(tiny_model), train_file=train_file, out=tmp_path / "out", full=True, n_epochs=15,
                      batch_size=1, learning_rate_multiplier=10.0, keep_checkpoints=1, seed=0)
    assert run(cfg).status == "succeeded"

    tokenizer = load_tokenizer(str(tiny_model))
    prompt = tokenizer.apply_chat_template(rows[0]["messages"][:1], add_generation_prompt=True, return_tensors="pt",
                                           return_dict=True)

    def greedy(folder) -> list[int]:
        model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32, attn_implementation="sdpa").eval()
        out = model.generate(**prompt, max_new_tokens=6, do_sample=False, pad_token_id=tokenizer.pad_token_id)
        return out[0, prompt["input_ids"].shape[1]:].tolist()

    eos = tokenizer.convert_tokens_to_ids("<|im_end|>")
    assert eos == tokenizer.eos_token_id
    assert eos not in greedy(tiny_model)[:4]  # the untrained model does not stop by itself
    generated = greedy(cfg.out)
    assert eos in generated[:4], tokenizer.decode(generated)
    assert tokenizer.decode(generated[:generated.index(eos)]) == "ok"


@pytest.mark.parametrize("stop_at", ["epoch_end", "mid_epoch"])
def test_a_stopped_and_resumed_run_equals_an_uninterrupted_one(tmp_path, tiny_model, stop_at):
    """Stop (as the worker does on cancel/shutdown) and resume: same weights, same metrics, step for step."""
    whole = config(tmp_path, tiny_model, out="a", n_train=14, batch_size=3, seed=1)
    assert run(whole).status == "succeeded"

    split = whole.model_copy(update={"out": tmp_path / "b", "events_file": tmp_path / "b-events.jsonl"})

    def should_stop() -> bool:
        if stop_at == "epoch_end":  # polled after the last step of epoch 1, before the epoch's evaluation
            return trainer.state.global_step == trainer.steps_per_epoch[0]
        return trainer.state.epoch == 1  # first poll in epoch 2: after its first step

    trainer = Trainer(split, should_stop=should_stop)
    trainer.setup()
    stopped = trainer.train()
    first_epoch = trainer.steps_per_epoch[0]
    assert stopped.status == "stopped"
    assert stopped.state.global_step == first_epoch + (stop_at == "mid_epoch")
    assert [p.name for p in list_checkpoints(split.out)][-1] == f"step-{stopped.state.global_step:06d}"
    assert not (split.out / "training.json").exists()

    resumed = run(split.model_copy(update={"resume": True}))
    assert resumed.status == "succeeded"
    assert resumed.state.global_step == json.loads((whole.out / "training.json").read_text())["steps"]
    starts = [e for e in read_events(split.events_file) if e["type"] == "start"]
    assert [e["resumed_at_step"] for e in starts] == [None, stopped.state.global_step]

    a = load_file(whole.out / "adapter_model.safetensors")
    b = load_file(split.out / "adapter_model.safetensors")
    assert a.keys() == b.keys() and a
    for name in a:
        assert torch.allclose(a[name], b[name], atol=1e-6, rtol=0), name
    rows_a, rows_b = read_results(whole.out), read_results(split.out)
    assert [r["train_loss"] for r in rows_a] == [r["train_loss"] for r in rows_b]
    assert rows_a == rows_b  # validation columns too, at the same steps


def test_an_out_folder_with_checkpoints_needs_resume_and_the_same_settings(tmp_path, tiny_model):
    """Never silently overwrite a run, and never continue one with other settings."""
    cfg = config(tmp_path, tiny_model, n_epochs=1)
    run(cfg)
    with pytest.raises(SelftuneError, match="already holds checkpoints"):
        run(cfg)
    with pytest.raises(ResumeMismatch, match="seed"):
        run(cfg.model_copy(update={"resume": True, "seed": 7}))
    with pytest.raises(ResumeMismatch, match="hyperparameters"):
        run(cfg.model_copy(update={"resume": True, "batch_size": 2}))
    write_jsonl(cfg.train_file, chat_rows(12, start=50))
    with pytest.raises(ResumeMismatch, match="train_file"):
        run(cfg.model_copy(update={"resume": True}))


def two_turn_rows(n: int) -> list[dict]:
    """Examples whose first answer comes early and whose second turn grows long: cut, they stay trainable."""
    return [{"messages": [{"role": "user", "content": f"hi {i}"}, {"role": "assistant", "content": "first"},
                          {"role": "user", "content": "more " * (10 + 10 * i)}, {"role": "assistant", "content": "second"}]}
            for i in range(n)]


def test_over_long_examples_are_truncated_not_fatal(tmp_path, tiny_model):
    """Truncation is announced and recorded, and the run goes on (the hosted service does the same)."""
    cfg = config(tmp_path, tiny_model, n_epochs=1, max_length=40, events_file=tmp_path / "events.jsonl")
    write_jsonl(cfg.train_file, two_turn_rows(12))
    write_jsonl(cfg.valid_file, two_turn_rows(12)[:10])
    assert load_training_file(cfg.train_file, load_tokenizer(str(tiny_model)), "sft", 40).truncated == 12
    assert run(cfg).status == "succeeded"
    record = json.loads((cfg.out / "training.json").read_text())
    assert record["data"]["train_file"]["truncated_examples"] == 12
    assert record["data"]["valid_file"]["truncated_examples"] == 10
    assert record["data"]["max_length"] == 40
    warnings = [e for e in read_events(tmp_path / "events.jsonl") if e["type"] == "warning"]  # docs/training.md
    assert len(warnings) == 2 and "12 example(s)" in json.dumps(warnings)


def test_resuming_with_another_max_length_is_refused(tmp_path, tiny_model):
    """max_length changes the training sequences (truncation) and the steps, like a changed file does."""
    cfg = config(tmp_path, tiny_model, n_epochs=1, valid=False)
    write_jsonl(cfg.train_file, two_turn_rows(12))
    run(cfg)
    cut = load_training_file(cfg.train_file, load_tokenizer(str(tiny_model)), "sft", 40)
    assert cut.truncated == 12  # every example is shorter (but still trainable) at max_length=40
    with pytest.raises(ResumeMismatch):
        run(cfg.model_copy(update={"resume": True, "max_length": 40}))


def test_early_stopping_ignores_a_repeated_evaluation_of_the_same_step(tmp_path, tiny_model):
    """Validation loss improves at every evaluation here, so patience must never run out."""
    cfg = config(tmp_path, tiny_model, n_epochs=3, eval_every=1, early_stopping_patience=1,
                 events_file=tmp_path / "events.jsonl")
    result = run(cfg)
    evals = [(e["step"], e["valid_loss"]) for e in read_events(tmp_path / "events.jsonl") if e["type"] == "eval"]
    distinct = dict(evals)
    losses = [distinct[step] for step in sorted(distinct)]
    assert losses == sorted(losses, reverse=True) and len(set(losses)) == len(losses)  # strictly improving
    assert result.status == "succeeded" and result.state.global_step == result.state.total_steps
    assert len(evals) == len(distinct)  # each step evaluated once


def test_only_the_newest_checkpoints_are_kept(tmp_path, tiny_model):
    cfg = config(tmp_path, tiny_model, valid=False, n_epochs=4, keep_checkpoints=2,
                 events_file=tmp_path / "events.jsonl")
    result = run(cfg)
    epoch_ends = [e["step"] for e in read_events(tmp_path / "events.jsonl") if e["type"] == "epoch"]
    assert len(epoch_ends) == 4 and epoch_ends[-1] == result.state.global_step
    assert [p.name for p in list_checkpoints(cfg.out)] == [f"step-{s:06d}" for s in epoch_ends[-2:]]
    assert len(list((cfg.out / "checkpoints").iterdir())) == 2  # no leftover temporary folders either


def test_a_time_budget_shortens_the_schedule_and_ends_it(tmp_path, tiny_model):
    """A run that would take far longer than its budget is planned to fit: it succeeds within the budget,
    with the learning rate decayed (the schedule was shortened, not cut off)."""
    budget = 8.0
    cfg = config(tmp_path, tiny_model, n_train=60, n_epochs=50, batch_size=1, time_budget=budget,
                 events_file=tmp_path / "events.jsonl")
    started = time.perf_counter()
    result = run(cfg)
    wall = time.perf_counter() - started
    assert result.status == "succeeded"
    full_schedule = 50 * 60  # ~20 ms a step: far longer than the budget
    assert result.state.global_step == result.state.total_steps < full_schedule
    record = json.loads((cfg.out / "training.json").read_text())
    assert record["seconds"] <= budget + 2
    assert wall <= budget + 15  # includes loading the model and writing the output: generous on a busy machine

    events = read_events(tmp_path / "events.jsonl")
    steps = [e for e in events if e["type"] == "step"]
    assert len(steps) == result.state.global_step
    peak = record["hyperparameters"]["learning_rate"]
    # the last step runs at about peak / planned steps; a run cut off mid-schedule would be far higher.
    # (On a busy machine the budget holds few steps: the bound follows the number actually planned.)
    assert steps[-1]["learning_rate"] <= max(0.1 * peak, 2 * peak / result.state.total_steps)
    assert learning_rate_at(result.state.global_step, result.state.total_steps, peak) == 0.0
    assert any(e["type"] == "plan" for e in events)
    assert read_results(cfg.out)[-1]["valid_loss"] != ""  # the final model is evaluated even mid-epoch


def test_export_merges_the_adapter_into_a_plain_model(tmp_path, tiny_model):
    """The exported folder loads without PEFT and computes what base + adapter computes."""
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    from selftune.export.merged import export_merged

    cfg = config(tmp_path, tiny_model, valid=False, learning_rate_multiplier=10.0)
    run(cfg)
    merged_dir = export_merged(cfg.out, tmp_path / "merged")
    assert (merged_dir / "training.json").is_file() and (merged_dir / "tokenizer.json").is_file()

    tokenizer = load_tokenizer(str(tiny_model))
    ids = torch.tensor([tokenizer.apply_chat_template(chat_rows(1)[0]["messages"], tokenize=True, return_dict=False)])
    if ids.dim() == 3:
        ids = ids[0]
    with torch.no_grad():
        merged = AutoModelForCausalLM.from_pretrained(merged_dir).eval()(ids).logits
        base = AutoModelForCausalLM.from_pretrained(tiny_model, dtype=torch.float32).eval()
        base_logits = base(ids).logits
        adapted = PeftModel.from_pretrained(base, cfg.out).eval()(ids).logits
    assert not torch.allclose(adapted, base_logits, atol=1e-3)  # the adapter learnt something to merge
    assert torch.allclose(merged, adapted, atol=1e-4)

    with pytest.raises(SelftuneError, match="already exists"):
        export_merged(cfg.out, merged_dir)
    with pytest.raises(SelftuneError, match="not a finished selftune run"):
        export_merged(tmp_path, tmp_path / "merged2")


def test_a_lora_run_feeds_stage_1_time_estimates(tmp_path, tiny_model):
    """`selftune data stats` estimates time from the speed the last real run reached on this machine."""
    from selftune.data.calibration import cached_speed

    result = run(config(tmp_path, tiny_model))
    speed = cached_speed(str(tiny_model))
    assert speed.source == "run" and speed.method.startswith("selftune train, supervised LoRA r16")
    assert speed.tokens_per_second == pytest.approx(result.state.tokens_seen / result.state.elapsed)
