"""The README's SDK example, run as written against a live server on the real bundled model (slow)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[2] / "README.md"


def readme_example() -> str:
    section = README.read_text().split("## The service", 1)[1]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


@pytest.mark.slow
def test_readme_cookbook_on_the_bundled_model(tmp_path, smollm2_home, new_server, chat_rows, write_jsonl):
    home = tmp_path / "home"
    home.mkdir()
    (home / "models").symlink_to(smollm2_home / "models")  # the converted SmolLM2, shared by the session
    server = new_server(home).start()
    try:
        write_jsonl(tmp_path / "train.jsonl", chat_rows(24))
        script = readme_example().replace("127.0.0.1:8000", f"127.0.0.1:{server.port}")
        result = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True,
                                timeout=600)
    finally:
        server.stop()
    assert result.returncode == 0, result.stderr + server.log()
    lines = result.stdout.splitlines()
    assert lines[0] == "processed "
    status, model, tokens, error = lines[1].split(" ", 3)
    assert (status, error) == ("succeeded", "None")
    assert re.fullmatch(r"ft:smollm2-135m-instruct:local:banking:\w+", model) and int(tokens) > 0
    assert "The job has successfully completed" in lines
    assert "step,train_loss,train_accuracy,valid_loss,valid_mean_token_accuracy" in lines
    assert any(line.startswith("['smollm2-135m-instruct'") and model in line for line in lines)
    assert len(result.stdout.split(model + "']\n", 1)[1].strip()) > 0  # the fine-tuned model answered
