# The two commands of the README:
#   make quickstart   run the quickstart on the embedded defaults (no external servers)
#   make test         the whole test suite: lint, types, layering, then every test
#                     (starts RabbitMQ, Kafka and Mosquitto on loopback first)
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: quickstart test check unit servers chromium bench clean

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@

quickstart: $(BIN)/.installed
	$(BIN)/python examples/quickstart/demo.py

check: $(BIN)/.installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports

servers:
	scripts/servers up all

chromium:  # the dashboard's browser tests (installs Debian's chromium once)
	scripts/chromium >/dev/null

test: $(BIN)/.installed check servers chromium
	$(BIN)/pytest -q

unit: $(BIN)/.installed
	$(BIN)/pytest -q tests/unit tests/system

bench: $(BIN)/.installed
	$(BIN)/pip install --quiet -e '.[test,bench]'
	$(BIN)/python bench/bench_pipeline.py

clean:
	rm -rf $(VENV) .state .eventing .mypy_cache .ruff_cache .pytest_cache
