# Everything a fresh machine needs is installed from here: a venv in .venv and the package with
# its extras. `make demo` and `make test` are the two commands README.md promises.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
DEMO   ?= demo-library

.PHONY: all install demo test lint bench clean

all: test

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test,bench,plot]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/python tools/make_demo_library.py $(DEMO)
	$(BIN)/engine-run --db $(DEMO).lmdb $(DEMO)
	@echo "--- three of the stored records (engine-query --db $(DEMO).lmdb export):"
	@$(BIN)/engine-query --db $(DEMO).lmdb export | head -n 3 | $(BIN)/python tools/show_records.py

lint: $(STAMP)
	$(BIN)/ruff check engine kernels tests bench tools
	$(BIN)/mypy

test: lint
	$(BIN)/python -m pytest -q

bench: $(STAMP)
	$(BIN)/python bench/kernel_speed.py --synthetic 3 --seconds 240 --repeats 3 -o bench/results/kernels-synthetic.json

clean:
	rm -rf $(VENV) $(DEMO) $(DEMO).lmdb .pytest_cache build *.egg-info
