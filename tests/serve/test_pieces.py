"""The engine's small parts: stop sequences in a growing text, the paged pool, sampling rules."""

from __future__ import annotations

import pytest
import torch

from selftune.serve.detokenize import TextStream
from selftune.serve.engine import SamplingParams
from selftune.serve.kv_pool import PAGE, KVPool
from selftune.serve.sampling import Sampler, _top_p


class CharTokenizer:
    """One token per character: makes the text stream's behaviour easy to state."""

    def decode(self, ids, skip_special_tokens=True):
        return "".join(chr(i) for i in ids)


def stream(text: str, stop: list[str]) -> tuple[list[str], TextStream]:
    s = TextStream(CharTokenizer(), stop)
    pieces = []
    for ch in text:
        pieces.append(s.add(ord(ch)))
        if s.stopped:
            break
    else:
        pieces.append(s.finish())
    return pieces, s


def test_text_that_may_become_a_stop_sequence_is_held_back():
    pieces, s = stream("Hello END world", ["END"])
    assert "".join(pieces) == "Hello " and s.stopped and s.text == "Hello "
    assert "E" not in "".join(pieces[:8])  # "E" and "EN" were never shown
    pieces, s = stream("Hello ENough", ["END"])
    assert "".join(pieces) == "Hello ENough" and not s.stopped


def test_a_partial_character_waits_for_the_next_token():
    class Utf8:
        def decode(self, ids, skip_special_tokens=True):
            return bytes(ids).decode("utf-8", errors="replace")

    s = TextStream(Utf8(), [])
    euro = "€".encode()
    assert [s.add(b) for b in euro] == ["", "", "€"]


def test_pool_pages_slots_and_release():
    pool = KVPool(layers=1, kv_heads=1, head_dim=2, capacity_tokens=4 * PAGE, dtype=torch.float32,
                  device=torch.device("cpu"))
    pages = pool.reserve(PAGE + 1)
    assert len(pages) == 2 and not pool.can_reserve(3 * PAGE) and pool.can_reserve(2 * PAGE)
    slots = KVPool.slots(pages, PAGE - 1, PAGE + 1)
    assert slots.tolist() == [pages[0] * PAGE + PAGE - 1, pages[1] * PAGE]
    pool.release(pages)
    assert pages == [] and pool.can_reserve(4 * PAGE)
    with pytest.raises(MemoryError):
        pool.reserve(5 * PAGE)


def test_top_p_keeps_the_smallest_likely_set():
    probs = torch.tensor([0.5, 0.3, 0.15, 0.05])
    assert (_top_p(probs.clone(), 0.7) > 0).tolist() == [True, True, False, False]
    assert (_top_p(probs.clone(), 0.5) > 0).tolist() == [True, False, False, False]
    assert (_top_p(probs.clone(), 5e-324) > 0).tolist() == [True, False, False, False]  # 0.0 in float32


def test_penalties_follow_openai_formula_and_greedy_is_argmax():
    sampler = Sampler(SamplingParams(max_tokens=4, temperature=0, frequency_penalty=1.0, presence_penalty=0.5), 3)
    logits = torch.tensor([2.0, 1.8, 0.0])
    assert sampler.choose(logits).token == 0
    assert sampler.choose(logits).token == 1  # token 0 now costs 1.0 + 0.5
    choice = Sampler(SamplingParams(max_tokens=1, temperature=0, logprobs=True, top_logprobs=2), 3).choose(logits)
    assert choice.top[0][0] == 0 and choice.logprob == pytest.approx(float(torch.log_softmax(logits, 0)[0]))
