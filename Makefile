# Two commands set everything up on a fresh machine with python3 and make:
#   make demo   -> .venv with invlend, then `invlend compare` on the built-in scenario
#   make test   -> .venv with the test extras, then ruff and the whole pytest suite
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
DEMO_OUT ?= invlend-report

.PHONY: demo test lint format bench clean docs docs-serve examples

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# Stamp files record what was installed, so edits to pyproject.toml reinstall.
$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e .
	touch $@

$(VENV)/.installed-test: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e ".[test]"
	touch $(VENV)/.installed $@

demo: $(VENV)/.installed
	$(BIN)/invlend compare --out $(DEMO_OUT) --force

lint: $(VENV)/.installed-test
	$(BIN)/ruff check src tests benchmarks docs/make_figures.py
	$(BIN)/ruff format --check src tests benchmarks docs/make_figures.py

format: $(VENV)/.installed-test
	$(BIN)/ruff check --fix src tests benchmarks docs/make_figures.py
	$(BIN)/ruff format src tests benchmarks docs/make_figures.py

test: lint
	$(BIN)/python -m pytest

bench: $(VENV)/.installed
	$(BIN)/python benchmarks/bench_engine.py --out docs/performance.md
	$(BIN)/python benchmarks/bench_tail.py --out docs/performance.md

# Re-execute every examples/*.ipynb top to bottom at full size and save the outputs in place
# (the test extras have what the notebooks need: nbclient, ipykernel, pandas, dask).
examples: $(VENV)/.installed-test
	$(BIN)/python examples/execute.py --scale full --inplace

# The documentation site (mkdocs.yml): `make docs` builds site/ in strict mode, any warning is
# an error; `make docs-serve` serves it at http://127.0.0.1:8000 and rebuilds on edits.
$(VENV)/.installed-docs: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e ".[docs]"
	touch $(VENV)/.installed $@

docs: $(VENV)/.installed-docs
	NO_MKDOCS_2_WARNING=1 $(BIN)/python -m mkdocs build --strict

docs-serve: $(VENV)/.installed-docs
	NO_MKDOCS_2_WARNING=1 $(BIN)/python -m mkdocs serve

clean:
	rm -rf $(VENV) $(DEMO_OUT) .pytest_cache
