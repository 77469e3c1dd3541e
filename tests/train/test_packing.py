"""Packing: a packed (and prefix-shared) row gives the same loss and gradients as one forward per example."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from selftune.train.model_setup import LoraSettings, causal_lm, load_for_training
from selftune.train.objectives import token_loss, trained_logits
from selftune.train.packing import MIN_SHARED_PREFIX, Sequence, pack

PREFIX = list(range(100, 120))  # 20 untrained tokens (a "system prompt") shared by A, B and C


def seq(ids: list[int], first_trained: int, last_trained: int | None = None) -> Sequence:
    """``ids`` with tokens first_trained..last_trained (default: to the end) trained."""
    last = len(ids) - 1 if last_trained is None else last_trained
    return Sequence.of(ids, [first_trained <= i <= last for i in range(len(ids))])


def examples() -> list[Sequence]:
    """A, B, C share PREFIX (their next tokens sort A < B < C); D shares nothing and sorts last.

    B trains a middle span only (an untrained tail after it), C trains from its first own token.
    """
    a = seq(PREFIX + [2000, 2001, 2002, 2003, 2004, 2005, 2006], first_trained=24)
    b = seq(PREFIX + [3000, 3001, 3002, 3003, 3004, 3005, 3006, 3007, 3008, 3009, 3010, 3011], 22, 27)
    c = seq(PREFIX + [4000, 4001, 4002], first_trained=20)  # first trained token right after the prefix
    d = seq([30000 + i for i in range(15)], first_trained=9)
    return [a, b, c, d]


@pytest.fixture(scope="module")
def fp32_model(tiny_model):
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(tiny_model, dtype=torch.float32, attn_implementation="sdpa").eval()


def separate_loss_sum(model, sequences: list[Sequence]) -> tuple[torch.Tensor, int]:
    """Sum of cross-entropies over every trained token, one plain (unpacked) forward per example."""
    total, count = 0.0, 0
    for s in sequences:
        logits = model(input_ids=s.input_ids[None]).logits[0]  # [L, vocab]
        targets = s.trained[1:].nonzero().squeeze(1) + 1
        total = total + F.cross_entropy(logits[targets - 1].float(), s.input_ids[targets], reduction="sum")
        count += len(targets)
    return total, count


@pytest.mark.parametrize("share", [False, True])
def test_packed_loss_equals_the_separate_forwards(fp32_model, share):
    """Packing is an optimisation only: the token-weighted loss must equal plain per-example forwards."""
    sequences = examples()
    with torch.no_grad():
        expected_sum, expected_count = separate_loss_sum(fp32_model, sequences)
        result = token_loss(fp32_model, pack(sequences, share_prefixes=share), None)
    assert result.n_tokens == expected_count == sum(int(s.trained[1:].sum()) for s in sequences)
    assert float(result.loss_sum) / result.n_tokens == pytest.approx(float(expected_sum) / expected_count, abs=1e-4)
    assert float(result.loss_sum) == pytest.approx(float(expected_sum), rel=1e-5)


def test_identical_examples_share_all_but_their_last_token(fp32_model):
    """Duplicates are the extreme of sharing (all but one token in the prefix) and must still be exact."""
    s = seq(list(range(200, 230)), first_trained=29)
    batch = pack([s, s, s], share_prefixes=True)
    assert batch.n_row_tokens == 29 + 3
    with torch.no_grad():
        expected_sum, count = separate_loss_sum(fp32_model, [s, s, s])
        result = token_loss(fp32_model, batch, None)
    assert result.n_tokens == count == 3
    assert float(result.loss_sum) == pytest.approx(float(expected_sum), rel=1e-5)


def test_lora_gradients_of_packed_shared_loss_equal_separate_ones(tiny_model):
    """Sharing a prefix must not change what is learnt: LoRA gradients equal the per-example computation."""
    model = load_for_training(tiny_model, LoraSettings(), None, torch.device("cpu"))
    model.eval()
    torch.manual_seed(1)
    lora = {name: p for name, p in model.named_parameters() if p.requires_grad}
    assert lora and all("lora_" in name for name in lora)
    with torch.no_grad():  # LoRA B starts at zero, which would leave every A gradient zero: make both matter
        for name, p in lora.items():
            if "lora_B" in name:
                p.normal_(std=0.05)
    sequences = examples()

    packed = token_loss(causal_lm(model), pack(sequences, share_prefixes=True), None)
    (packed.loss_sum / packed.n_tokens).backward()
    packed_grads = {name: p.grad.clone() for name, p in lora.items()}
    model.zero_grad(set_to_none=True)

    separate_sum, count = separate_loss_sum(model, sequences)
    (separate_sum / count).backward()
    for name, p in lora.items():
        assert p.grad is not None and p.grad.abs().sum() > 0, name
        assert torch.allclose(packed_grads[name], p.grad, atol=1e-5, rtol=1e-4), name


@pytest.mark.parametrize("share", [False, True])
def test_no_attention_across_examples(fp32_model, share):
    """Changing example A's own tokens must leave B, C and D's logits untouched (and change A's)."""
    sequences = examples()
    a = sequences[0]
    changed_ids = a.input_ids.clone()
    changed_ids[20:24] = torch.tensor([2100, 2101, 2102, 2103])  # A's own untrained tokens; order and groups unchanged
    changed = [Sequence(changed_ids, a.trained), *sequences[1:]]
    with torch.no_grad():
        batch, batch_changed = pack(sequences, share), pack(changed, share)
        before = trained_logits(fp32_model, batch, None)
        after = trained_logits(fp32_model, batch_changed, None)
    assert torch.equal(batch.loss_example, batch_changed.loss_example)
    of_a = batch.loss_example == 0
    assert not torch.allclose(before[of_a], after[of_a], atol=1e-3)  # the change is visible where it should be
    assert torch.allclose(before[~of_a], after[~of_a], atol=1e-6, rtol=0)


def test_positions_restart_per_example_and_continue_after_a_shared_prefix():
    """Rotary positions must be those each example would have alone; the row holds each example's tokens."""
    a, b, c, d = examples()
    unshared = pack([a, b, c, d], share_prefixes=False)
    assert unshared.position_ids[0].tolist() == [i for s in (a, b, c, d) for i in range(len(s))]
    assert unshared.input_ids[0].tolist() == [t for s in (a, b, c, d) for t in s.input_ids.tolist()]

    shared = pack([d, c, a, b], share_prefixes=True)  # input order does not matter; rows are sorted by tokens
    own = [a, b, c]
    assert shared.position_ids[0].tolist() == (list(range(20)) + [i for s in own for i in range(20, len(s))]
                                               + list(range(len(d))))
    assert shared.input_ids[0].tolist() == (PREFIX + [t for s in own for t in s.input_ids[20:].tolist()]
                                            + d.input_ids.tolist())
    assert shared.n_row_tokens == unshared.n_row_tokens - 2 * len(PREFIX) < unshared.n_row_tokens
    assert shared.n_tokens == unshared.n_tokens == sum(len(s) for s in (a, b, c, d))
    # labels (and loss_example) refer to the examples in the order given to pack()
    for index, s in enumerate([d, c, a, b]):
        assert shared.labels[shared.loss_example == index].tolist() == s.input_ids[s.trained & (
            torch.arange(len(s)) > 0)].tolist()


def test_a_shared_prefix_never_holds_a_trained_token(fp32_model):
    """Two examples equal for 30 tokens but trained from token 10: only the first 10 tokens may be shared."""
    common = list(range(500, 530))
    x = seq(common + [600, 601, 602], first_trained=10, last_trained=12)
    y = seq(common + [700, 701], first_trained=10, last_trained=12)
    batch = pack([x, y], share_prefixes=True)
    assert batch.n_row_tokens == 10 + (len(x) - 10) + (len(y) - 10)
    assert batch.position_ids[0, :11].tolist() == list(range(11))
    with torch.no_grad():
        expected_sum, _ = separate_loss_sum(fp32_model, [x, y])
        assert float(token_loss(fp32_model, batch, None).loss_sum) == pytest.approx(float(expected_sum), rel=1e-5)

    early = MIN_SHARED_PREFIX - 1  # a trained token before MIN_SHARED_PREFIX: nothing worth sharing
    x2, y2 = seq(common + [600], first_trained=early), seq(common + [700], first_trained=early)
    assert pack([x2, y2], share_prefixes=True).n_row_tokens == len(x2) + len(y2)
