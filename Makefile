# metarim — the contributor interface. `make demo` and `make test` each set up .venv on first use.
PYTHON ?= python3
VENV ?= .venv
# the CPU wheel the committed results used; newer torch releases tested, and why they are not the default:
# docs/installation.md
TORCH_SPEC ?= torch==2.13.0
BIN := $(VENV)/bin
PY := $(BIN)/python
STAMP := $(VENV)/.metarim-installed
PYTEST_ARGS ?=

.PHONY: help venv demo test test-all lint format typecheck bench bench-study-full docs dist clean

help:
	@echo "make demo    run the main job (creates .venv on first use)"
	@echo "make test    run the default test suite (creates .venv on first use)"
	@echo "make lint    ruff check + ruff format --check + mypy"
	@echo "make bench   run the benchmarks (machine otherwise idle, please)"
	@echo "make bench-study-full   whole study-budget GoTo runs per agent (about 10 min, idle machine)"
	@echo "make docs    build the documentation site and check its internal links"
	@echo "make dist    build the wheel and the sdist into dist/ and check their metadata and contents"
	@echo "variables: TORCH_SPEC='$(TORCH_SPEC)' (e.g. TORCH_SPEC='torch==2.13.0', the committed results' torch), PYTHON=$(PYTHON)"

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --upgrade pip

# torch first and explicitly: an unpinned torch pulled in by a dependency would fetch a multi-GB CUDA build.
$(STAMP): pyproject.toml | $(PY)
	$(PY) -m pip install "$(TORCH_SPEC)"
	$(PY) -m pip install "$(TORCH_SPEC)" -e ".[dev,docs,experiments,ray]"  # torch named again: keeps the pin
	touch $(STAMP)

venv: $(STAMP)

# The main job: Meta-RIMs vs RIMs vs reversed vs LSTM on the shifting GoTo family (~9 min on 2 cores).
# Completed runs are skipped, so an interrupted demo resumes; the report lands in results/quick/report.md.
DEMO_ARGS ?= --preset quick --out results/quick

demo: $(STAMP)
	$(BIN)/metarim compare $(DEMO_ARGS)

test: $(STAMP)
	$(PY) -m pytest $(PYTEST_ARGS)

test-all: $(STAMP)
	$(PY) -m pytest -m "" $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

format: $(STAMP)
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

# Each benchmark prints a table and writes its figures to results/bench/ (committed; the docs results page shows them).
# bench_study also writes metarim_sb3/experiments/presets/costs.yaml, the measured costs of `metarim compare --dry-run`
# (STUDY_ARGS= to keep the committed one).
BENCH_OUT ?= results/bench
STUDY_ARGS ?= --write-costs

bench: $(STAMP)
	$(PY) benchmarks/bench_env.py --json $(BENCH_OUT)/bench_env.json
	$(PY) benchmarks/bench_rim.py --json $(BENCH_OUT)/bench_rim.json
	$(PY) benchmarks/profile_rim.py --out $(BENCH_OUT)/profile_rim.txt
	$(PY) benchmarks/bench_train.py --json $(BENCH_OUT)/bench_train.json
	$(PY) benchmarks/bench_study.py --json $(BENCH_OUT)/bench_study.json $(STUDY_ARGS)
	$(PY) benchmarks/bench_compile.py --json $(BENCH_OUT)/bench_compile.json
	$(PY) benchmarks/bench_callbacks.py --json $(BENCH_OUT)/bench_callbacks.json
	$(PY) benchmarks/bench_seed_batch.py --json $(BENCH_OUT)/bench_seed_batch.json
	$(PY) benchmarks/profile_seed_batch.py --out $(BENCH_OUT)/profile_seed_batch.txt
	$(PY) benchmarks/report.py --dir $(BENCH_OUT)

# Whole GoTo runs at the study preset's full budget (about 10 min): what a study run costs once setup is spread out.
bench-study-full: $(STAMP)
	$(PY) benchmarks/bench_study.py --preset study --envs MetaRIM-GoTo-v0 --timesteps 150000 --repeats 1 \
		--json $(BENCH_OUT)/bench_study_full.json
	$(PY) benchmarks/report.py --dir $(BENCH_OUT)

# The HTML build (warnings are errors), then its internal links: every linked file and #anchor must exist
# (Sphinx's linkcheck needs the network and skips anchors inside the site).
docs: $(STAMP)
	$(BIN)/sphinx-build -W --keep-going -b html docs docs/_build/html
	$(PY) docs/_scripts/check_links.py docs/_build/html

# The wheel and the sdist (python -m build, in an isolated build environment), then their metadata: twine check
# (complete, the README renders) and .ci/check_dist.py (as pyproject.toml says; presets, py.typed, LICENSE and the
# metarim command shipped; no tests, results or docs in the wheel).
dist: $(STAMP)
	rm -rf dist
	$(PY) -m build --outdir dist .
	$(BIN)/twine check --strict dist/*
	$(PY) .ci/check_dist.py dist

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache .ruff_cache .mypy_cache docs/_build docs/_generated docs/api \
		docs/envs docs/results docs/_static/gallery
