# eqm — two commands: `make demo` and `make test`. Everything they need is installed here.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.eqm-installed
UV_VERSION := 0.13.9
export DVC_NO_ANALYTICS := 1
export MPLBACKEND := Agg

.PHONY: install demo test lint format bench bench-r clean system-deps

install: $(STAMP)

$(STAMP): requirements.lock pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "eqm needs Python 3.11 or newer")'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check "uv==$(UV_VERSION)"
	$(BIN)/uv pip sync --quiet --compile-bytecode --python $(BIN)/python requirements.lock
	$(BIN)/uv pip install --quiet --python $(BIN)/python --no-deps -e .
	-@$(MAKE) --no-print-directory system-deps
	touch $(STAMP)

# Optional speed-up only (CJK font subsetting in WeasyPrint ~40x faster); never required.
system-deps:
	@if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && ! ldconfig -p | grep -q libharfbuzz-subset; then \
	  echo "installing optional libharfbuzz-subset0"; \
	  (apt-get install -y -qq libharfbuzz-subset0 >/dev/null 2>&1 || \
	   (apt-get update -qq >/dev/null 2>&1 && apt-get install -y -qq libharfbuzz-subset0 >/dev/null 2>&1)) || \
	  echo "libharfbuzz-subset0 not installed; PDFs will build more slowly"; \
	fi

demo: install
	$(BIN)/eqm demo-data
	$(BIN)/eqm run
	@echo "Reports are under reports/ (open reports/*/summary.html)"

test: install
	$(BIN)/python -m pytest

lint: install
	$(BIN)/ruff check pipeline tests benchmarks
	$(BIN)/ruff format --check pipeline tests benchmarks

format: install
	$(BIN)/ruff format pipeline tests benchmarks
	$(BIN)/ruff check --fix pipeline tests benchmarks

# Performance targets (figures in README): ingest of the demo < 10 s, validate 1M students < 10 s,
# indicators 1M students < 15 s and < 4 GB, report build of the demo < 60 s.
bench: install
	$(BIN)/python benchmarks/bench_ingest.py
	$(BIN)/python benchmarks/bench_validate.py
	$(BIN)/python benchmarks/bench_indicators.py
	$(BIN)/python benchmarks/bench_demo_round.py

# Same comparison against R survey (needs R with the survey package; not part of make test).
bench-r: install
	$(BIN)/python benchmarks/bench_indicators.py --r

clean:
	rm -rf data/processed reports .pytest_cache
