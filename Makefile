# The project's single entry point. On a fresh machine, `make demo` and `make test` do all the set-up.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
ROADIE := $(BIN)/roadie

.PHONY: demo test unit lint fmt image dashboard crds binaries cluster-up cluster-down venv clean bench

venv: $(VENV)/.installed
$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $@

binaries: venv  ## find or build etcd, kube-apiserver, controller-manager, scheduler, kwok; helm and promtool
	$(ROADIE) cluster binaries
	$(BIN)/python -m roadie.devcluster.tools helm promtool

demo: binaries  ## bring the local cluster and the operator up, and show the examples working
	$(ROADIE) demo

test: lint binaries  ## the whole suite: unit tests, then tests against the local control plane
	$(BIN)/pytest -ra

unit: venv
	$(BIN)/pytest -ra tests/unit

LINTED := src tests benchmarks deploy/monitoring image

lint: venv
	$(BIN)/ruff check $(LINTED)
	$(BIN)/ruff format --check $(LINTED)
	$(BIN)/lint-imports
	$(BIN)/mypy
	$(BIN)/mypy deploy/monitoring/dashboard.py
	$(BIN)/mypy benchmarks
	$(BIN)/hadolint Dockerfile
	$(BIN)/python deploy/monitoring/dashboard.py --check

fmt: venv
	$(BIN)/ruff check --fix $(LINTED)
	$(BIN)/ruff format $(LINTED)

image: venv  ## build the operator's image without a container engine (as root; debootstrap; a few minutes): build/image/oci
	$(BIN)/python -m image.build

dashboard: venv  ## regenerate the Grafana dashboard and the metrics table in docs/monitoring.md
	$(BIN)/python deploy/monitoring/dashboard.py

bench: venv  ## benchmarks, each reporting ratios against a baseline measured in the same run
	$(BIN)/python benchmarks/bench_scheduler.py 10000
	$(BIN)/python benchmarks/bench_workshops.py 30
	$(BIN)/python benchmarks/bench_snapshot.py --scale 0.2 --rounds 3

crds: venv  ## regenerate deploy/crds, the RBAC, the policy, the chart's generated files and deploy/operator from the models
	$(ROADIE) crds --output deploy/crds --rbac-output deploy/rbac/roadie.yaml --policy-output deploy/policy/roadie-namespaces.yaml \
		--chart deploy/helm/roadie --manifests-output deploy/operator/roadie.yaml

cluster-up: binaries
	$(ROADIE) cluster up

cluster-down: venv
	$(ROADIE) cluster down

clean:
	-$(ROADIE) cluster down
	rm -rf $(VENV) .pytest_cache .ruff_cache
