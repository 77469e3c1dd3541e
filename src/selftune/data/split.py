"""Split a JSONL file into a training and a validation file, reproducibly.

Two streaming passes keep memory proportional to the number of lines, never their content:
the first notes line numbers (and, to stratify, a fixed-size digest of each line's label), the
second copies each chosen line's bytes unchanged, so the split never reformats the data.
"""

from __future__ import annotations

import hashlib
import random
from array import array
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from selftune.data.problems import Problem
from selftune.data.reader import BOM, open_input, read_jsonl, same_file
from selftune.data.validation import detect_purpose
from selftune.errors import SelftuneError
from selftune.store.atomic import atomic_write

PROBLEMS_LISTED = 5


class SplitSummary(BaseModel):
    """How many examples went where; ``strata`` is the number of distinct labels when stratified."""

    train: int
    valid: int
    strata: int | None = None
    train_path: str
    valid_path: str


def split_file(src: Path, *, train_out: Path, valid_out: Path, valid_fraction: float | None = None,
               valid_size: int | None = None, seed: int = 0, stratify: bool = False,
               force: bool = False) -> SplitSummary:
    """Write a seeded train/validation split of ``src``; the same seed always gives the same split.

    With ``stratify``, examples are grouped by their (last) assistant answer, so that a
    classification file keeps each label's share in both parts; a label seen once stays in training.
    """
    src, train_out, valid_out = Path(src), Path(train_out), Path(valid_out)
    _check_request(valid_fraction, valid_size)
    _check_paths(src, train_out, valid_out, force)
    lines, labels, strata = _scan(src, stratify)
    wanted = _valid_count(src, len(lines), valid_fraction, valid_size)
    rng = random.Random(seed)
    if labels is None:
        chosen = {lines[i] for i in rng.sample(range(len(lines)), wanted)}
    else:
        chosen = _stratified_choice(src, lines, labels, strata, wanted, rng)
    train, valid = _copy(src, train_out, valid_out, chosen, len(lines))
    return SplitSummary(train=train, valid=valid, strata=strata if stratify else None,
                        train_path=str(train_out), valid_path=str(valid_out))


# --- checks before any work -------------------------------------------------------------------


def _check_request(valid_fraction: float | None, valid_size: int | None) -> None:
    if (valid_fraction is None) == (valid_size is None):
        raise SelftuneError("give either a validation fraction or a validation size (exactly one of them)")
    if valid_fraction is not None:
        if isinstance(valid_fraction, bool) or not isinstance(valid_fraction, (int, float)) \
                or not 0 < valid_fraction < 1:  # also refuses NaN
            raise SelftuneError(f"the validation fraction must be between 0 and 1, got {valid_fraction!r}")
    elif isinstance(valid_size, bool) or not isinstance(valid_size, int) or valid_size < 1:
        raise SelftuneError(f"the validation size must be a whole number of at least 1, got {valid_size!r}")


def _check_paths(src: Path, train_out: Path, valid_out: Path, force: bool) -> None:
    """Refuse before reading a byte: overwriting the input or one output with the other loses data."""
    if same_file(train_out, valid_out):
        raise SelftuneError(f"{train_out}: the training and validation outputs must be different files")
    for out in (train_out, valid_out):
        if same_file(src, out):
            raise SelftuneError(f"{out}: is the input file; write the split to other files")
        if out.is_dir():
            raise SelftuneError(f"{out}: is a directory, not a file")
    existing = [str(out) for out in (train_out, valid_out) if out.exists()]
    if existing and not force:
        raise SelftuneError(f"{' and '.join(existing)} {'exists' if len(existing) == 1 else 'exist'}; "
                            "pass --force to overwrite")
    open_input(src).close()  # a missing input is a one-line error, not a traceback


def _valid_count(src: Path, examples: int, valid_fraction: float | None, valid_size: int | None) -> int:
    """How many examples go to validation; both parts must end up non-empty."""
    if examples < 2:
        raise SelftuneError(f"{src}: has {examples} example(s); at least 2 are needed to split")
    if valid_size is not None:
        if valid_size >= examples:
            raise SelftuneError(f"a validation size of {valid_size} leaves nothing to train on: "
                                f"{src} has {examples} examples")
        return valid_size
    wanted = int(valid_fraction * examples + 0.5)  # round half up, unlike round()
    if not 1 <= wanted < examples:
        raise SelftuneError(f"a validation fraction of {valid_fraction} of {examples} examples is {wanted}, "
                            "leaving one part empty; choose another fraction or a validation size")
    return wanted


# --- pass 1: line numbers and labels --------------------------------------------------------------


def _scan(src: Path, stratify: bool) -> tuple[array, array | None, int]:
    """Line numbers of the examples, their stratum ids (when stratifying), and the number of strata.

    A label is kept as a 16-byte digest, so a file of long unique answers costs no more memory
    than one of short labels.
    """
    lines, labels = array("q"), (array("q") if stratify else None)
    ids: dict[bytes, int] = {}
    problems: list[Problem] = []
    unreadable = 0
    for line, value in read_jsonl(src):
        if isinstance(value, Problem):
            unreadable += 1
            if len(problems) < PROBLEMS_LISTED:
                problems.append(value)
            continue
        lines.append(line)
        if labels is not None:
            labels.append(ids.setdefault(_digest(_stratum_key(value)), len(ids)))
    if unreadable:
        raise SelftuneError(_unreadable_message(src, problems, unreadable))
    return lines, labels, len(ids)


def _unreadable_message(src: Path, problems: list[Problem], count: int) -> str:
    listed = "\n  ".join(problem.format(str(src)) for problem in problems)
    more = f"\n  ... and {count - len(problems)} more" if count > len(problems) else ""
    return f"{src}: {count} line(s) can't be read, so the file can't be split; fix them first:\n  {listed}{more}"


def _stratum_key(value: Any) -> str | None:
    """The text of the answer a line trains on: the last assistant message, or the preferred output."""
    purpose = detect_purpose(value)
    if purpose == "sft":
        messages = value["messages"]
        answers = [m for m in messages if isinstance(m, dict) and m.get("role") == "assistant"] \
            if isinstance(messages, list) else []
        return _text(answers[-1].get("content")) if answers else None
    if purpose == "dpo":
        outputs = value.get("preferred_output")
        if isinstance(outputs, list) and outputs and isinstance(outputs[0], dict):
            return _text(outputs[0].get("content"))
    return None


def _text(content: Any) -> str | None:
    """A message's content as one string, whether written as a string or a list of text parts."""
    if isinstance(content, str):
        return content.strip()
    if isinstance(content, list):
        return "".join(p["text"] for p in content if isinstance(p, dict) and isinstance(p.get("text"), str)).strip()
    return None


def _digest(key: str | None) -> bytes:
    if key is None:
        return b""  # every line without an answer shares one stratum; a real digest is never empty
    return hashlib.blake2b(key.encode("utf-8", "surrogatepass"), digest_size=16).digest()


# --- choosing the validation lines --------------------------------------------------------------


def _stratified_choice(src: Path, lines: array, labels: array, strata: int, wanted: int,
                       rng: random.Random) -> set[int]:
    """Sample each stratum in proportion to its size, so each label keeps its share in both parts."""
    members: list[list[int]] = [[] for _ in range(strata)]
    for line, label in zip(lines, labels, strict=True):
        members[label].append(line)
    quotas = _allocate(src, [len(m) for m in members], wanted, rng)
    chosen: set[int] = set()
    for lines_of_stratum, quota in zip(members, quotas, strict=True):
        chosen.update(rng.sample(lines_of_stratum, quota))
    return chosen


def _allocate(src: Path, sizes: list[int], wanted: int, rng: random.Random) -> list[int]:
    """Largest-remainder apportionment of ``wanted`` over the strata, so the total is exact.

    Singleton strata get nothing (a lone example can't be in both parts, and training must see
    it), and no stratum gives away its last example.
    """
    eligible = [i for i, size in enumerate(sizes) if size >= 2]
    capacity = sum(sizes[i] - 1 for i in eligible)
    if wanted > capacity:
        raise SelftuneError(f"{src}: a stratified split can put at most {capacity} examples in validation "
                            f"while every label keeps one in training (labels seen once stay in training), "
                            f"but {wanted} were asked for; ask for fewer or don't stratify")
    total = sum(sizes[i] for i in eligible)
    quotas = [0] * len(sizes)
    remainders = {}
    for i in eligible:  # exact integer arithmetic: wanted * size / total
        quotas[i], remainders[i] = divmod(wanted * sizes[i], total)
    order = sorted(eligible, key=lambda i: (-remainders[i], rng.random()))  # ties broken by the seed
    left = wanted - sum(quotas)
    while left:
        for i in order:
            if left and quotas[i] < sizes[i] - 1:
                quotas[i] += 1
                left -= 1
    return quotas


# --- pass 2: copying the bytes -------------------------------------------------------------------


def _copy(src: Path, train_out: Path, valid_out: Path, chosen: set[int], examples: int) -> tuple[int, int]:
    """Copy every non-blank line to one output, unchanged but for its line end and a leading BOM."""
    train = valid = 0
    with open_input(src) as f, atomic_write(train_out, "wb") as train_file, \
            atomic_write(valid_out, "wb") as valid_file:
        for number, raw in enumerate(f, start=1):
            if number == 1 and raw.startswith(BOM):
                raw = raw[len(BOM):]
            if not raw.strip():
                continue  # the same lines read_jsonl skips
            if number in chosen:
                valid_file.write(_line(raw))
                valid += 1
            else:
                train_file.write(_line(raw))
                train += 1
        if valid != len(chosen) or train + valid != examples:  # nothing is replaced: the writes abort
            raise SelftuneError(f"{src}: changed while it was being split; run the split again")
    return train, valid


def _line(raw: bytes) -> bytes:
    if raw.endswith(b"\n"):
        raw = raw[:-1]
    if raw.endswith(b"\r"):
        raw = raw[:-1]
    return raw + b"\n"


__all__ = ["SplitSummary", "split_file"]
