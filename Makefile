# The two commands users need: `make demo` and `make test` (both run `make setup` first).
SHELL := /bin/bash
.SHELLFLAGS := -o pipefail -c
# pip on these machines warns about missing local mirror folders; keep the output readable
QUIET_PIP := 2>&1 | { grep -v "^WARNING: Location" || true; }
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.rt_rl-setup-done
MSGS := $(wildcard rt_rl_ws/src/rt_rl_interfaces/msg/*.msg) rt_rl_ws/src/rt_rl_interfaces/CMakeLists.txt

.PHONY: setup demo test bench-graph bench-busy bench-soak bench-record bench-stagger bench-twin clean

setup: $(STAMP)

$(STAMP): requirements.txt setup.py $(MSGS) scripts/build_interfaces.sh
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip $(QUIET_PIP)
	$(PY) -m pip install --quiet -r requirements.txt $(QUIET_PIP)
	VIRTUAL_ENV=$(abspath $(VENV)) PATH=$(abspath $(VENV))/bin:$$PATH scripts/build_interfaces.sh
	$(PY) -m pip install --quiet --no-deps --no-build-isolation -e . $(QUIET_PIP)
	@touch $(STAMP)
	@echo "setup done: $(VENV)"

demo: setup
	$(VENV)/bin/rt-rl launch config/demo.yaml --duration 20 --summary runs/demo/summary.json

test: setup
	$(VENV)/bin/ruff check .
	$(PY) -m pytest

# Timing benchmarks of the live graph (nothing else should run meanwhile: two cores).
bench-graph: setup
	$(VENV)/bin/rt-rl bench graph --workers 1 5 --repeat 5 --duration 30 --out docs/bench_graph

bench-busy: setup
	$(VENV)/bin/rt-rl bench graph --workers 5 --repeat 3 --duration 30 --busy-loop --out docs/bench_graph_busy

bench-soak: setup
	$(VENV)/bin/rt-rl bench soak --duration 600 --out docs/bench_soak.md

bench-record: setup
	$(VENV)/bin/rt-rl bench record --repeat 3 --duration 60 --out docs/bench_record.md

bench-stagger: setup
	$(VENV)/bin/rt-rl bench stagger --repeat 1 --case-repeat 3 --out docs/bench_stagger

bench-twin: setup
	$(VENV)/bin/rt-rl bench twin --params config/demo.yaml --repeat 3 --duration 120 --twin-episodes 100 --out docs/bench_twin

clean:
	rm -rf build runs $(VENV) src/*.egg-info
