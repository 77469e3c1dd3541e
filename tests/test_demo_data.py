"""The demo's restaurants data built from the cleaned E2E CSVs (what a user without ../shared downloads):
hand-made rows converted as ../shared/data/restaurants was, and the folder found in its places."""

from __future__ import annotations

import json

import pytest

from selftune.demo_data import (
    RESTAURANTS_SYSTEM,
    e2e_attributes,
    restaurant_examples,
    schema_of,
    task_dir,
)
from selftune.errors import SelftuneError

CSV = '''mr,ref,fixed,orig_mr
"name[The Eagle], eatType[coffee shop], food[Chinese], priceRange[more than £30], customer rating[high], \
area[riverside], near[Burger King]",The Eagle coffee shop by Burger King is dear.,0,"name[The Eagle]"
"familyFriendly[no], name[Alimentum], area[city centre]","Alimentum, in the city centre, is not for children.",1,""
"name[Zizzi], familyFriendly[yes]",Zizzi welcomes families.,0,""
'''


def test_meaning_representations_become_the_answers_json_in_the_fixed_key_order():
    rows = restaurant_examples(CSV)
    assert [r["messages"][1]["content"] for r in rows] == [
        "The Eagle coffee shop by Burger King is dear.", "Alimentum, in the city centre, is not for children.",
        "Zizzi welcomes families."]
    assert all(r["messages"][0] == {"role": "system", "content": RESTAURANTS_SYSTEM} for r in rows)
    answers = [r["messages"][2]["content"] for r in rows]
    assert answers == [
        '{"name": "The Eagle", "eatType": "coffee shop", "food": "Chinese", "priceRange": "more than £30", '
        '"customerRating": "high", "area": "riverside", "near": "Burger King"}',
        '{"name": "Alimentum", "area": "city centre", "familyFriendly": false}',  # reordered; yes/no a boolean
        '{"name": "Zizzi", "familyFriendly": true}']
    assert schema_of(rows) == {"type": "object", "additionalProperties": False, "properties": {
        "name": {"type": "string"}, "eatType": {"enum": ["coffee shop"]}, "food": {"enum": ["Chinese"]},
        "priceRange": {"enum": ["more than £30"]}, "customerRating": {"enum": ["high"]},
        "area": {"enum": ["city centre", "riverside"]}, "familyFriendly": {"type": "boolean"},
        "near": {"type": "string"}}}


@pytest.mark.parametrize("mr", ["name[Aromi", "stars[5], name[Aromi]", "", "name[Aromi] area[riverside]"])
def test_a_malformed_meaning_representation_is_named(mr):
    with pytest.raises(SelftuneError, match="E2E"):
        e2e_attributes(mr)


def test_the_demo_data_is_found_in_selftune_demo_data(tmp_path, monkeypatch):
    import selftune.demo_data as demo_data

    monkeypatch.setattr(demo_data, "PROJECT_ROOT", tmp_path / "nowhere" / "project")  # no ../shared beside it
    for task in ("banking77", "restaurants"):
        (tmp_path / task).mkdir()
        for name in ("train_1k.jsonl", "test.jsonl"):
            (tmp_path / task / name).write_text(json.dumps({"messages": []}) + "\n")
    monkeypatch.setenv("SELFTUNE_DEMO_DATA", str(tmp_path))
    assert task_dir("restaurants") == tmp_path / "restaurants" and task_dir("banking77") == tmp_path / "banking77"
