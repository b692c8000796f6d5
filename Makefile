# eqm — two commands: `make demo` and `make test`. Everything they need is installed here.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.eqm-installed
UV_VERSION := 0.13.9
export DVC_NO_ANALYTICS := 1
export MPLBACKEND := Agg

.PHONY: install demo test lint format bench bench-r clean

install: $(STAMP)

$(STAMP): requirements.lock pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "eqm needs Python 3.11 or newer")'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check "uv==$(UV_VERSION)"
	$(BIN)/uv pip sync --quiet --compile-bytecode --python $(BIN)/python requirements.lock
	$(BIN)/uv pip install --quiet --python $(BIN)/python --no-deps -e .
	$(BIN)/python -m compileall -q pipeline $$($(BIN)/python -c 'import glob, sysconfig; print(" ".join(glob.glob(sysconfig.get_paths()["purelib"] + "/__editable__*.py")))')
	touch $(STAMP)

demo: install
	$(BIN)/eqm demo-data
	$(BIN)/eqm run
	@echo "Reports are under reports/ (open reports/*/summary.html)"

# The suite on every core (pytest-xdist; each test module on one worker, see tests/conftest.py).
test: install
	$(BIN)/python -m pytest -n auto

lint: install
	$(BIN)/ruff check pipeline tests benchmarks
	$(BIN)/ruff format --check pipeline tests benchmarks

format: install
	$(BIN)/ruff format pipeline tests benchmarks
	$(BIN)/ruff check --fix pipeline tests benchmarks

# Speed targets (figures in README「耗时」): eqm --help < 0.5 s; every command starts < 1 s; the demo
# round (eqm run) < 15 s; validate < 2 s beyond the Great Expectations import, imported once per
# eqm run; eqm indicators on 1,000,000 students < 5 s and < 2 GB; eqm run on 1,000,000 students
# measured. Each script writes its figures to $(BENCH_OUT); the last line prints them next to the
# targets in one table (with the R comparison of the last `make bench-r`, if any). ~15 minutes.
BENCH_OUT := benchmarks/_data/results

bench: install
	@mkdir -p $(BENCH_OUT)
	@rm -f $(addprefix $(BENCH_OUT)/,startup.json demo_round.json ingest.json validate.json indicators.json factors.json province_run.json)
	$(BIN)/python benchmarks/bench_startup.py --json $(BENCH_OUT)/startup.json
	$(BIN)/python benchmarks/bench_demo_round.py --json $(BENCH_OUT)/demo_round.json
	$(BIN)/python benchmarks/bench_ingest.py --json $(BENCH_OUT)/ingest.json
	$(BIN)/python benchmarks/bench_validate.py --json $(BENCH_OUT)/validate.json
	$(BIN)/python benchmarks/bench_indicators.py --json $(BENCH_OUT)/indicators.json
	$(BIN)/python benchmarks/bench_factors.py --json $(BENCH_OUT)/factors.json
	$(BIN)/python benchmarks/bench_province_run.py --json $(BENCH_OUT)/province_run.json
	@$(BIN)/python benchmarks/bench_summary.py $(BENCH_OUT)

# Against R survey (needs R with the survey package; not part of make test): the whole
# eqm indicators process >= 10x faster than R's estimation alone on 32,000 students.
bench-r: install
	@mkdir -p $(BENCH_OUT)
	$(BIN)/python benchmarks/bench_indicators.py --r --json $(BENCH_OUT)/indicators_r.json
	@$(BIN)/python benchmarks/bench_summary.py $(BENCH_OUT) | grep -E "^\| 项目|^\|---|R survey"

clean:
	rm -rf data/processed reports .pytest_cache
