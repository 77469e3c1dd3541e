"""Losses on a packed batch: the supervised token loss and the DPO preference loss.

Both run the decoder once over the packed row and apply the LM head (vocab x hidden, the largest
matmul of a small model) only at the positions that predict a trained token.
"""

from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from selftune.train.attention import packed_attention_enabled
from selftune.train.packing import PackedBatch


@dataclass
class TokenLoss:
    loss_sum: torch.Tensor  # summed cross-entropy over trained tokens (differentiable)
    n_tokens: int
    n_correct: int


def _autocast(dtype: torch.dtype | None, device: torch.device):
    return torch.autocast(device.type, dtype=dtype) if dtype is not None else nullcontext()


def trained_logits(causal_lm, batch: PackedBatch, dtype: torch.dtype | None) -> torch.Tensor:
    """Logits [N, vocab] (fp32) at the N positions that predict a trained token."""
    device = causal_lm.device
    decoder = causal_lm.get_decoder()
    head = causal_lm.get_output_embeddings()
    with packed_attention_enabled(causal_lm), _autocast(dtype, device):
        hidden = decoder(input_ids=batch.input_ids.to(device), position_ids=batch.position_ids.to(device),
                         packed_plan=batch.plan.to(device)).last_hidden_state[0]  # [T, hidden]
        logits = head(hidden.index_select(0, batch.loss_positions.to(device)))  # [N, vocab]
    return logits.float()


def token_loss(causal_lm, batch: PackedBatch, dtype: torch.dtype | None) -> TokenLoss:
    logits = trained_logits(causal_lm, batch, dtype)
    labels = batch.labels.to(logits.device)
    loss_sum = F.cross_entropy(logits, labels, reduction="sum")
    correct = int((logits.detach().argmax(-1) == labels).sum())
    return TokenLoss(loss_sum, int(labels.numel()), correct)


def sequence_logps(causal_lm, batch: PackedBatch, dtype: torch.dtype | None) -> torch.Tensor:
    """Summed log-probability of each example's trained tokens, [n_examples] — DPO's input
    (TRL sums over completion tokens too; it does not average)."""
    logits = trained_logits(causal_lm, batch, dtype)
    labels = batch.labels.to(logits.device)
    token_logps = torch.log_softmax(logits, dim=-1).gather(1, labels[:, None]).squeeze(1)  # [N]
    sums = torch.zeros(batch.n_examples, dtype=token_logps.dtype, device=token_logps.device)
    return sums.index_add(0, batch.loss_example.to(logits.device), token_logps)


@dataclass
class PreferenceLoss:
    loss: torch.Tensor  # mean over pairs (differentiable)
    chosen_rewards: torch.Tensor  # [B], detached
    rejected_rewards: torch.Tensor

    @property
    def accuracy(self) -> float:
        """Share of pairs whose preferred answer gains more reward (strict, as TRL counts)."""
        return float((self.chosen_rewards > self.rejected_rewards).float().mean())

    @property
    def margin(self) -> float:
        return float((self.chosen_rewards - self.rejected_rewards).mean())


def dpo_loss(policy_chosen: torch.Tensor, policy_rejected: torch.Tensor, reference_chosen: torch.Tensor,
             reference_rejected: torch.Tensor, beta: float) -> PreferenceLoss:
    """TRL's sigmoid DPO loss (``loss_type="sigmoid"``, its default).

    TRL 1.16 keeps this inside ``DPOTrainer._compute_loss`` together with its own forward pass, so
    it can't be called on our packed batches; these lines are the same formula, and
    tests/train/test_dpo.py checks them against TRL's own code on the same log-probabilities.
    """
    chosen_rewards = beta * (policy_chosen - reference_chosen)
    rejected_rewards = beta * (policy_rejected - reference_rejected)
    losses = -F.logsigmoid(chosen_rewards - rejected_rewards)
    return PreferenceLoss(losses.mean(), chosen_rewards.detach(), rejected_rewards.detach())
