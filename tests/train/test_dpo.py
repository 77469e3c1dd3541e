"""DPO: our loss is TRL's sigmoid loss, and a short preference run starts at ln 2 and improves."""

from __future__ import annotations

import csv
import json
import math
from collections import defaultdict
from types import SimpleNamespace

import pytest
import torch

from selftune.train import TrainConfig, run
from selftune.train.objectives import dpo_loss
from tests.helpers import write_jsonl


@pytest.mark.parametrize("beta", [0.1, 0.5])
def test_dpo_loss_equals_trls_sigmoid_loss(beta):
    """Same loss, gradients, reward accuracy and margin as TRL's DPOTrainer on the same log-probabilities.

    TRL 1.16 has no standalone loss function: ``DPOTrainer._compute_loss`` runs the model itself. It is
    called here with a stand-in ``self`` and a stand-in model that returns fixed per-token log-probs,
    with the reference log-probs precomputed (as ours are).
    """
    trl_dpo = pytest.importorskip("trl.trainer.dpo_trainer")
    torch.manual_seed(0)
    pairs, length = 8, 9
    completion_mask = torch.zeros(2 * pairs, length, dtype=torch.long)
    completion_mask[:, 4:] = 1
    per_token = (-torch.rand(2 * pairs, length - 1) * 3 * completion_mask[:, 1:]).requires_grad_(True)
    ref_chosen, ref_rejected = -torch.rand(pairs) * 12, -torch.rand(pairs) * 12
    with torch.no_grad():  # two pairs where policy == reference: tied rewards count as wrong in both
        ref_chosen[:2] = per_token[:2].sum(1)
        ref_rejected[:2] = per_token[pairs:pairs + 2].sum(1)

    class FakeModel:
        training = True

        def __call__(self, **kwargs):
            zeros = torch.zeros(2 * pairs, length - 1)
            return SimpleNamespace(log_probs=per_token, entropy=zeros, mean_logits=zeros, is_top1=zeros.bool(),
                                   aux_loss=None)

    def same(x):
        return x

    fake_self = SimpleNamespace(
        model=FakeModel(), accelerator=SimpleNamespace(device="cpu", gather_for_metrics=same, gather=same),
        aux_loss_enabled=False, ld_alpha=None, precompute_ref_logps=True, f_divergence_type="reverse_kl",
        loss_types=["sigmoid"], loss_weights=[1.0], beta=beta, use_weighting=False, label_smoothing=0.0,
        _metrics={"train": defaultdict(list), "eval": defaultdict(list)}, _total_train_tokens=0, _tp_size=1,
    )
    inputs = {"input_ids": torch.zeros(2 * pairs, length, dtype=torch.long),
              "attention_mask": torch.ones(2 * pairs, length, dtype=torch.long),
              "completion_mask": completion_mask, "ref_chosen_logps": ref_chosen, "ref_rejected_logps": ref_rejected}
    trl_loss = trl_dpo.DPOTrainer._compute_loss(fake_self, fake_self.model, inputs, return_outputs=False)
    (trl_grad,) = torch.autograd.grad(trl_loss, per_token)

    logps = per_token.sum(1)
    ours = dpo_loss(logps[:pairs], logps[pairs:], ref_chosen, ref_rejected, beta)
    (our_grad,) = torch.autograd.grad(ours.loss, per_token)

    metrics = fake_self._metrics["train"]
    assert ours.loss.item() == pytest.approx(trl_loss.item(), rel=1e-6)
    assert torch.allclose(our_grad, trl_grad, atol=1e-7)
    assert ours.accuracy == pytest.approx(metrics["rewards/accuracies"][0])
    assert ours.accuracy < 1  # the ties are counted as TRL counts them
    assert ours.margin == pytest.approx(metrics["rewards/margins"][0], rel=1e-5)
    assert float(ours.chosen_rewards.mean()) == pytest.approx(metrics["rewards/chosen"][0], rel=1e-5)
    assert float(ours.rejected_rewards.mean()) == pytest.approx(metrics["rewards/rejected"][0], rel=1e-5)


def preference_rows(n: int, start: int = 0) -> list[dict]:
    return [{"input": {"messages": [{"role": "system", "content": "Answer the customer politely."},
                                    {"role": "user", "content": f"Can you help me with order {i}?"}]},
             "preferred_output": [{"role": "assistant", "content": f"Of course, I will check order {i} now."}],
             "non_preferred_output": [{"role": "assistant", "content": "No."}]}
            for i in range(start, start + n)]


def test_a_dpo_run_starts_at_ln2_and_improves(tmp_path, tiny_model):
    """With LoRA the policy starts equal to the reference (B is zero), so the first loss is ln 2;
    training must then prefer the preferred answers."""
    train_file = write_jsonl(tmp_path / "train.jsonl", preference_rows(12))
    valid_file = write_jsonl(tmp_path / "valid.jsonl", preference_rows(10, start=100))
    cfg = TrainConfig(model=str(tiny_model), train_file=train_file, valid_file=valid_file, out=tmp_path / "out",
                      method="dpo", n_epochs=4, batch_size=4, learning_rate_multiplier=10.0, seed=0,
                      events_file=tmp_path / "events.jsonl")
    result = run(cfg)
    assert result.status == "succeeded"
    reference = torch.load(cfg.out / "reference_logps.pt", weights_only=True)
    assert reference["train"].shape == (12, 2) and reference["valid"].shape == (10, 2)
    assert bool((reference["train"] < 0).all())

    with open(cfg.out / "results.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    losses = [float(r["train_loss"]) for r in rows]
    assert losses[0] == pytest.approx(math.log(2), abs=1e-3)
    valid = [(float(r["valid_loss"]), float(r["valid_mean_token_accuracy"])) for r in rows if r["valid_loss"]]
    assert len(valid) == 4
    assert losses[-1] < math.log(2) - 0.01 and valid[-1][0] < math.log(2) - 0.01
    assert float(rows[-1]["train_accuracy"]) == 1.0 and valid[-1][1] == 1.0

    record = json.loads((cfg.out / "training.json").read_text())
    assert record["method"] == "dpo" and record["hyperparameters"]["beta"] == 0.1
    trained = [s["text"] for s in record["example"]["spans"] if s["trained"]]
    assert trained == ["Of course, I will check order 0 now.<|im_end|>"]


def test_a_fresh_run_does_not_reuse_an_interrupted_runs_reference(tmp_path, tiny_model):
    """A run killed before its first checkpoint leaves reference_logps.pt behind; a new run with another
    file in the same folder must compute its own (its first loss is then ln 2 again)."""
    first = write_jsonl(tmp_path / "first.jsonl", preference_rows(12))
    second = write_jsonl(tmp_path / "second.jsonl", preference_rows(12, start=500)[::-1])
    cfg = TrainConfig(model=str(tiny_model), train_file=first, out=tmp_path / "out", method="dpo", n_epochs=1,
                      batch_size=4, seed=0)

    def interrupt() -> bool:  # Ctrl-C after the first step: no checkpoint is written
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run(cfg, should_stop=interrupt)
    assert (cfg.out / "reference_logps.pt").is_file() and not (cfg.out / "checkpoints").exists()

    result = run(cfg.model_copy(update={"train_file": second}))
    assert result.state.results[0]["train_loss"] == pytest.approx(math.log(2), abs=1e-3)
