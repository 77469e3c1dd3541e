"""The demo's data sets, found or built: ``../shared/data/<task>`` when the project sits beside it,
else ``$SELFTUNE_DEMO_DATA/<task>``, else downloaded once from the public source into
``$SELFTUNE_HOME/datasets/<task>`` and turned into the same chat JSONL files as ``../shared/data``.

- ``banking77``: PolyAI's task-specific-datasets (Casanueva et al. 2020, CC BY 4.0).
- ``restaurants``: the cleaned E2E NLG data (Dušek, Howcroft and Rieser 2019, CC BY-SA 4.0), turned
  around: a description in, the attributes it states out as one JSON object.
"""

from __future__ import annotations

import csv
import io
import json
import os
import random
import re
import urllib.request
from collections import defaultdict
from pathlib import Path

from selftune.config import get_settings
from selftune.errors import SelftuneError
from selftune.store.atomic import atomic_write
from selftune.store.build_once import build_once

PROJECT_ROOT = Path(__file__).resolve().parents[2]

BANKING77_SOURCE = "https://raw.githubusercontent.com/PolyAI-LDN/task-specific-datasets/master/banking_data"
BANKING77_SYSTEM = ("Classify the customer's banking message into exactly one intent label. "
                    "Answer with the label only.")
PER_INTENT = 13  # train_1k.jsonl: 13 examples for each of the 77 intents

E2E_SOURCE = "https://raw.githubusercontent.com/tuetschek/e2e-cleaning/master/cleaned-data"
E2E_FILES = {"train": "devel-fixed.no-ol.csv", "test": "test-fixed.csv"}  # the cleaned train split is not used
E2E_LICENSE = ("The cleaned E2E NLG data (Dušek, Howcroft and Rieser 2019, INLG; github.com/tuetschek/e2e-cleaning), "
               "built on the E2E NLG Challenge data (Novikova, Dušek and Rieser 2017), is licensed CC BY-SA 4.0: "
               "https://creativecommons.org/licenses/by-sa/4.0/ — these files are derived from it and shared under "
               "the same license.\n")
# the answer's keys, in this order; the E2E meaning representation spells one of them differently
RESTAURANT_KEYS = ("name", "eatType", "food", "priceRange", "customerRating", "area", "familyFriendly", "near")
E2E_KEY = {"customer rating": "customerRating"}
RESTAURANTS_SYSTEM = ("Extract the restaurant's attributes from the description. Answer with one JSON object using "
                      "only these keys, and only for attributes the text states: " + ", ".join(RESTAURANT_KEYS) + ".")
TRAIN_1K, VALID = 1000, 200  # train_1k.jsonl: the first 1,000 shuffled rows; valid_200.jsonl the next 200
ATTRIBUTE = re.compile(r"\s*([^\[\],]+?)\s*\[([^\]]*)\]\s*(?:,|$)")


def task_dir(task: str) -> Path:
    """A folder with the task's train_1k.jsonl and test.jsonl (and schema.json for restaurants)."""
    build = {"banking77": _download_banking77, "restaurants": _download_restaurants}[task]
    own = os.environ.get("SELFTUNE_DEMO_DATA")
    candidates = [PROJECT_ROOT.parent / "shared" / "data" / task]
    if own:
        candidates += [Path(own) / task] + ([Path(own)] if task == "banking77" else [])  # a Banking77 folder itself
    for candidate in candidates:
        if (candidate / "train_1k.jsonl").is_file() and (candidate / "test.jsonl").is_file():
            return candidate
    return build_once(get_settings().home.expanduser() / "datasets" / task, build)


def _fetch(url: str, what: str) -> str:
    try:
        with urllib.request.urlopen(url, timeout=60) as response:
            return response.read().decode("utf-8")
    except OSError as exc:
        raise SelftuneError(f"could not download {what} ({exc}); put its train_1k.jsonl and test.jsonl in a folder "
                            f"and point SELFTUNE_DEMO_DATA at the folder above it") from None


def _write_chat(path: Path, examples: list[dict]) -> None:
    with atomic_write(path) as f:
        for example in examples:
            f.write(json.dumps(example, ensure_ascii=False) + "\n")


def _download_banking77(folder: Path) -> None:
    """Fetch the original CSVs and write the chat files the way ../shared/data does."""
    print(f"downloading Banking77 from {BANKING77_SOURCE} ...", flush=True)
    splits = {}
    for name in ("train", "test"):
        text = _fetch(f"{BANKING77_SOURCE}/{name}.csv", "Banking77")
        (folder / f"{name}.csv").write_text(text)
        splits[name] = [(row["text"], row["category"]) for row in csv.DictReader(io.StringIO(text))]

    rng = random.Random(0)
    train = splits["train"][:]
    rng.shuffle(train)
    by_intent = defaultdict(list)
    for text, intent in train:
        by_intent[intent].append((text, intent))
    train_1k = [row for intent in sorted(by_intent) for row in by_intent[intent][:PER_INTENT]]
    rng.shuffle(train_1k)
    for name, rows in (("train.jsonl", train), ("train_1k.jsonl", train_1k), ("test.jsonl", splits["test"])):
        with atomic_write(folder / name) as f:
            for text, intent in rows:
                f.write(json.dumps({"messages": [{"role": "system", "content": BANKING77_SYSTEM},
                                                 {"role": "user", "content": text},
                                                 {"role": "assistant", "content": intent}]}) + "\n")


def e2e_attributes(mr: str) -> dict:
    """An E2E meaning representation as the answer's JSON object:
    ``name[The Eagle], customer rating[high], familyFriendly[no]`` ->
    ``{"name": "The Eagle", "customerRating": "high", "familyFriendly": false}``, keys in RESTAURANT_KEYS order."""
    found, position = {}, 0
    for match in ATTRIBUTE.finditer(mr):
        if match.start() != position:
            break
        key, value = E2E_KEY.get(match.group(1), match.group(1)), match.group(2).strip()
        if key not in RESTAURANT_KEYS:
            raise SelftuneError(f"unknown E2E attribute {match.group(1)!r} in {mr!r}")
        found[key] = value == "yes" if key == "familyFriendly" else value
        position = match.end()
    if position != len(mr) or not found:
        raise SelftuneError(f"not an E2E meaning representation: {mr!r}")
    return {key: found[key] for key in RESTAURANT_KEYS if key in found}


def restaurant_example(description: str, attributes: dict) -> dict:
    """One chat example: the description in, its attributes out as JSON."""
    return {"messages": [{"role": "system", "content": RESTAURANTS_SYSTEM},
                         {"role": "user", "content": description},
                         {"role": "assistant", "content": json.dumps(attributes, ensure_ascii=False)}]}


def restaurant_examples(csv_text: str) -> list[dict]:
    """A cleaned E2E CSV (``mr,ref,fixed,orig_mr``) as chat examples, in file order."""
    return [restaurant_example(row["ref"], e2e_attributes(row["mr"])) for row in csv.DictReader(io.StringIO(csv_text))]


def _download_restaurants(folder: Path) -> None:
    """Fetch the cleaned E2E CSVs and write the chat files and the schema the way ../shared/data does."""
    print(f"downloading the cleaned E2E data from {E2E_SOURCE} ...", flush=True)
    texts = {}
    for split, name in E2E_FILES.items():
        texts[split] = _fetch(f"{E2E_SOURCE}/{name}", "the cleaned E2E data")
        with atomic_write(folder / name) as f:
            f.write(texts[split])
    train = restaurant_examples(texts["train"])
    random.Random(0).shuffle(train)
    test = restaurant_examples(texts["test"])
    for name, examples in (("train.jsonl", train), ("train_1k.jsonl", train[:TRAIN_1K]),
                           ("valid_200.jsonl", train[TRAIN_1K:TRAIN_1K + VALID]), ("test.jsonl", test)):
        _write_chat(folder / name, examples)
    with atomic_write(folder / "schema.json") as f:
        f.write(json.dumps(schema_of(train + test), indent=2, ensure_ascii=False) + "\n")
    with atomic_write(folder / "LICENSE") as f:
        f.write(E2E_LICENSE)


def schema_of(examples: list[dict]) -> dict:
    """The schema of the answers: names free text, the closed lists as enums, familyFriendly a boolean."""
    values: dict[str, set] = defaultdict(set)
    for example in examples:
        for key, value in json.loads(example["messages"][-1]["content"]).items():
            values[key].add(value)
    properties = {}
    for key in RESTAURANT_KEYS:
        if key in ("name", "near"):
            properties[key] = {"type": "string"}
        elif key == "familyFriendly":
            properties[key] = {"type": "boolean"}
        else:
            properties[key] = {"enum": sorted(values[key])}
    return {"type": "object", "properties": properties, "additionalProperties": False}
