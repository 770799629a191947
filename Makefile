# Two entry points: `make demo` (set up + run the main job) and `make test`.
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

$(BIN)/ticketlab: pyproject.toml
	$(PY) -m venv $(VENV)
	# The CPU build of torch first, pinned, so nothing pulls CUDA wheels on a CPU machine.
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e '.[test]'
	touch $@

.PHONY: setup demo test bench
setup: $(BIN)/ticketlab

demo: setup
	$(BIN)/ticketlab demo

test: setup
	$(BIN)/python -m pytest -q

bench: setup
	$(BIN)/ticketlab bench --json
