"""The ft: model-id grammar: written and read back exactly like the hosted service's ids."""

import pytest

from selftune.models.ids import FineTunedId, fine_tuned_id, parse_fine_tuned_id


def test_round_trip_with_and_without_suffix_and_checkpoint():
    model = fine_tuned_id("smollm2-135m-instruct", "org-a", "banking", "ftjob-abc123")
    assert str(model) == "ft:smollm2-135m-instruct:org-a:banking:abc123"
    assert str(model.at_step(40)) == "ft:smollm2-135m-instruct:org-a:banking:abc123:ckpt-step-40"
    assert parse_fine_tuned_id(str(model.at_step(40))) == FineTunedId("smollm2-135m-instruct", "org-a", "banking",
                                                                       "abc123", 40)
    no_suffix = fine_tuned_id("HuggingFaceTB/SmolLM2-135M", "local", None, "ftjob-x")
    assert str(no_suffix) == "ft:HuggingFaceTB/SmolLM2-135M:local::x"
    assert parse_fine_tuned_id(str(no_suffix)) == no_suffix


@pytest.mark.parametrize("text", ["gpt-4o-mini", "ft:a:b", "ft::org::job", "ft:a:b:c:d:step-3", "ft:a:b:c:d:e:f",
                                  "ft:a:b:c:"])
def test_not_fine_tuned_ids(text):
    assert parse_fine_tuned_id(text) is None


def test_colons_are_refused_in_parts():
    with pytest.raises(ValueError, match="suffix"):
        fine_tuned_id("base", "org", "a:b", "ftjob-1")
