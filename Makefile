# rnnlab: `make run` (the main job) and `make test` (the whole suite) set everything up themselves.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install run test lint bench reproduce clean

install: $(STAMP)

# torch first and pinned through the constraints file: an unpinned resolve would pull the CUDA
# build (several GB) onto CPU-only machines.
$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet -c constraints.txt torch==2.13.0
	$(BIN)/python -m pip install --quiet -c constraints.txt -e ".[dev]"
	touch $(STAMP)

# The main job: rnn vs gru vs lstm on the adding problem, a Hydra multirun that prints a table.
run: install
	$(BIN)/rnnlab-train --multirun experiment=quickstart

# The CPU-scale sweeps behind docs/results.md (docs/reproduce.yaml), then the page rebuilt from
# their run directories; a rerun keeps finished jobs. ONLY=copy runs one section.
reproduce: install
	$(BIN)/rnnlab-reproduce $(if $(ONLY),--only $(ONLY))

test: install
	$(BIN)/python -m pytest -n 2 --dist loadfile -q

lint: install
	$(BIN)/ruff check src scripts tests

bench: install
	$(BIN)/python scripts/bench_cells.py --json logs/bench_cells.json

clean:
	rm -rf $(VENV) logs .pytest_cache
