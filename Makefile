# The two commands a new user needs (see README):
#   make demo   install what is missing, bring up the stack and the platform, run a demo goal
#   make test   install what is missing, then lint, type-check and run every test
VENV := .venv/bin

.PHONY: setup up down status demo test lint unit bench

setup:
	bash infra/setup.sh

up: setup
	$(VENV)/omnihub stack up

down:
	$(VENV)/omnihub stack down

status:
	$(VENV)/omnihub stack status

demo: up
	$(VENV)/omnihub demo

lint: setup
	$(VENV)/ruff check .
	$(VENV)/ruff format --check .
	$(VENV)/lint-imports
	$(VENV)/mypy
	$(VENV)/omnihub schemas check
	$(VENV)/omnihub contracts check

unit: setup
	$(VENV)/pytest -q -m "not integration and not e2e"

test: lint
	$(VENV)/pytest -q -ra

# Every benchmark, each figure beside its bare baseline from the same run (wrk is used
# when installed, httpx otherwise). QUICK=1 keeps bench_pipeline under 3 minutes.
bench: up
	$(VENV)/python bench/bench_ingest.py
	$(VENV)/python bench/bench_projections.py
	$(VENV)/python bench/bench_sagas.py
	$(VENV)/python bench/bench_temporal_sqlite.py
	$(VENV)/python bench/bench_plan_cache.py
	$(VENV)/python bench/bench_pipeline.py $(if $(QUICK),--quick,)
