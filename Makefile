# The two set-up commands of the README:
#   make demo   - install into .venv and run the main job on the embedded default (offline)
#   make test   - install into .venv (plus the test tools) and run the test suite
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.janus-installed

.PHONY: demo test test-deps lint bench clean

$(STAMP): pyproject.toml hatch_build.py janus_build/match/_tokens.c janus_build/match/unicode_table.py
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[test]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/janus demo --out demo-out

test-deps:
	bash scripts/install_test_deps.sh

test: $(STAMP) test-deps
	$(BIN)/python -m pytest -q

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

bench: $(STAMP)
	$(BIN)/python -m benchmarks.run_all

clean:
	rm -rf $(VENV) demo-out .pytest_cache
