# ftctl — fault-tolerance testing for LLM inference deployments.
# `make help` lists the targets.

PYTHON ?= python3
VENV ?= .venv
AIPERF_VENV ?= .venv-aiperf
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
DYNAMO_VERSION := 1.6.1
AIPERF_VERSION := 0.13.0
export FTCTL_AIPERF := $(CURDIR)/$(AIPERF_VENV)/bin/aiperf

.PHONY: help install install-aiperf lint test test-unit test-e2e test-kube test-kube-real \
	kube-build kube-up kube-down debian-packages demo bench clean

help: ## list the targets
	@grep -E '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/' | column -t -s '	'

$(VENV)/.installed: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q -c constraints.txt -e '.[dev]'
	# Dynamo: the runtime with its dependencies, then the meta package without its
	# unreachable extras (REFERENCE.md §6).
	$(PIP) install -q -c constraints.txt ai-dynamo-runtime==$(DYNAMO_VERSION) packaging msgspec
	$(PIP) install -q --no-deps ai-dynamo==$(DYNAMO_VERSION)
	touch $@

$(AIPERF_VENV)/.installed: constraints-aiperf.txt
	# aiperf lives in its own environment: its pins clash with Dynamo's (REFERENCE.md §3).
	$(PYTHON) -m venv $(AIPERF_VENV)
	$(AIPERF_VENV)/bin/pip install -q -c constraints-aiperf.txt aiperf==$(AIPERF_VERSION)
	touch $@

install: $(VENV)/.installed $(AIPERF_VENV)/.installed debian-packages ## create .venv (ftctl + Dynamo) and .venv-aiperf

# Debian packages the tests use: headless Chromium renders the HTML report in its test.
DEBIAN_PACKAGES := chromium-headless-shell
debian-packages: ## install the Debian packages the tests need (apt-get, only when missing)
	@missing=""; for p in $(DEBIAN_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  sudo=""; [ "$$(id -u)" -eq 0 ] || sudo=sudo; \
	  echo "apt-get install$$missing"; \
	  $$sudo apt-get update -q && \
	  $$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $$missing; \
	fi

install-aiperf: $(AIPERF_VENV)/.installed ## create .venv-aiperf only

lint: $(VENV)/.installed ## ruff lint + format check
	$(VENV)/bin/ruff check ftctl tests bench tools
	$(VENV)/bin/ruff format --check ftctl tests bench tools

test: install lint kube-build ## install if needed, lint, build/reuse kube-apiserver, run all tests
	$(VENV)/bin/pytest -q --durations=10

test-unit: $(VENV)/.installed ## unit tests only
	$(VENV)/bin/pytest -q tests/unit

test-e2e: install ## end-to-end tests on the real local Dynamo graph (legacy and aiperf clients)
	$(VENV)/bin/pytest -q tests/e2e tests/integration

test-kube: $(VENV)/.installed ## Kubernetes path against the loopback fake API server
	$(VENV)/bin/pytest -q -m "not real_apiserver" tests/kube

kube-build: ## build or reuse kube-apiserver 1.20.2 + etcd (cached in ~/.cache/ftctl/kube)
	@$(PYTHON) tools/kube/build.py

test-kube-real: $(VENV)/.installed kube-build ## real kube-apiserver + DGD CRD + stand-ins: tests/realkube and tests/kube's real target
	$(VENV)/bin/pytest -q -m real_apiserver tests/realkube tests/kube

kube-up: $(VENV)/.installed kube-build ## start etcd + kube-apiserver + DGD CRD in the background
	@$(PY) -m tools.kube.controlplane up

kube-down: ## stop what `make kube-up` started and remove its data
	@$(PY) -m tools.kube.controlplane down

demo: $(VENV)/.installed ## run the demo scenario on a real local Dynamo graph
	$(VENV)/bin/ftctl run scenario_files/local/demo.yaml --output-dir results/demo --junit results/demo/junit.xml

# The benches install what they compare against when missing (nginx_bench.py: nginx and wrk from
# Debian with apt-get); `make test` never does.
bench: install ## run the benchmarks (prints measured figures, ratios and the load average)
	@start=$$(date +%s); for b in bench/*.py; do echo "== $$b"; PYTHONPATH=$(CURDIR) $(PY) $$b || exit 1; done; \
	echo "make bench: $$(( $$(date +%s) - start )) s, load average $$(cut -d' ' -f1-3 /proc/loadavg)"

clean: ## remove virtual environments and build output
	rm -rf $(VENV) $(AIPERF_VENV) build *.egg-info .pytest_cache .ruff_cache
