# Two entry points on a fresh machine: `make demo` and `make test`.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test install lint typecheck unit clean

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/pip install -q -e '.[server,dev]'
	touch $(STAMP)

install: $(STAMP)

lint: $(STAMP)
	$(BIN)/ruff check ftctl tests bench
	$(BIN)/ruff format --check ftctl tests bench
	$(BIN)/lint-imports

typecheck: $(STAMP)
	$(BIN)/mypy ftctl

test: lint typecheck
	$(BIN)/pytest -q -p no:cacheprovider

# Every test that needs no server (key-level steps run on fakeredis); starts no Redis.
unit: $(STAMP)
	$(BIN)/pytest -q -p no:cacheprovider -m "not integration"

demo: $(STAMP)
	$(BIN)/ftctl demo

clean:
	rm -rf $(VENV) build dist *.egg-info
