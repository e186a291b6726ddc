# Two entry points, both self-contained on a machine with Python 3.11 and pip:
#   make demo  -> generate the fraud demo world and run valuechain on it end to end, then the
#                 monitoring story (a new attack campaign replayed, monitored, retrained)
#   make test  -> run lint, type checks and the test suite
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[ml,dev,spark]"
	touch $(STAMP)

.PHONY: install demo test test-fast lint bench clean
install: $(STAMP)

demo: $(STAMP)
	$(BIN)/valuechain demo fraud --dir examples/fraud --story

test: $(STAMP)
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/mypy
	$(BIN)/pytest -n 2 --dist loadgroup -q tests src/valuechain --doctest-modules

# The same without the tests marked slow (handbook reproductions, end-to-end walkthroughs).
test-fast: $(STAMP)
	$(BIN)/pytest -n 2 --dist loadgroup -q -m "not slow" tests src/valuechain --doctest-modules

bench: $(STAMP)
	$(BIN)/pip install --quiet -e ".[ml,dev,spark,bench]"
	$(BIN)/python benchmarks/build_features.py --write-results

clean:
	rm -rf $(VENV) .valuechain examples/*/.valuechain
