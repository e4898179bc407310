# prefexp: `make help` lists the targets. Every target sets up .venv first (idempotent).
.PHONY: help setup run test test-all bench clean
PY := .venv/bin/python

help:  ## list targets
	@grep -E '^[a-z-]+:.*##' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

setup:  ## create .venv and install prefexp with every extra (CPU torch pinned)
	@bash scripts/setup.sh

run: setup  ## the main job: MixDPO (tau=0.5) on the built-in sandbox
	$(PY) -m prefexp.train loss=mixdpo tau=0.5

test: setup  ## the default test suite (< 10 min on 2 CPU cores)
	$(PY) -m pytest -q

test-all: setup  ## every test, slow ones included
	$(PY) -m pytest -q -m "slow or not slow"

bench: setup  ## training throughput and memory, prefexp vs TRL
	$(PY) scripts/bench_train.py

clean:  ## remove run outputs (keeps the model cache)
	rm -rf outputs multirun
