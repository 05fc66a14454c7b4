# Build and test entry points for the imagepusher.registry collection.
#
#   make deps         system packages (docker-registry, skopeo) + .venv with tests/requirements.txt
#   make units        unit tests (no registry, no network)
#   make integration  tests against a real local registry started by the tests themselves
#   make test         deps, ansible-test sanity, then every test in one pytest run (what .ci/run calls)
#   make demo         deps, then a local mirror between two loopback registries
#   make sanity       deps, then `ansible-test sanity` on a copy of the collection (offline-capable;
#                     see tests/sanity/run.sh; SANITY_ARGS='--test pylint' runs a subset)
#   make lint         ansible-lint (profile production, offline) on the role, the demo/example
#                     playbooks and the collection metadata, plus changelog, bindep and EE checks
#                     (tests/lint/run.sh); tools in their own venv .venv-lint (make lint-venv)
#   make galaxy       build the collection tarball, install it, run a module from the installed copy
#                     (tests/galaxy/run.sh)
#   make changelog    check changelogs/ and regenerate CHANGELOG.md (antsibull-changelog)
#   make ansible-test-integration  `ansible-test integration` on a copy of the collection
#                     (tests/ansible-test/run.sh; INTEGRATION_TARGETS='image_pull image_mirror')
#   make ee-tarball   the collection built from this checkout, as examples/execution-environment.yml installs it
#   make core-venv    .venv-core-oldest: the oldest ansible-core meta/runtime.yml claims, for the
#                     smoke run tests/integration/test_oldest_ansible_core.py
#   make bench        ours against skopeo (bench/RESULTS.md, bench/results.json, bench/results.svg)
#   make bench-smoke  the same harness on tiny sizes (< 1 min): every row's code path and the chart
#   make bench-venv   .venv-bench: matplotlib (bench/requirements.txt) for bench/chart.py only
#
# Nothing here starts a service: tests/support/registry.py starts and stops its own registries.

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := test

PYTHON ?= python3
VENV   := .venv
VPY    := $(VENV)/bin/python
# Stamp = copy of the requirements file that was installed; make re-runs pip only when
# tests/requirements.txt is newer than it (i.e. changed), so `make deps` is cheap to repeat.
STAMP  := $(VENV)/.requirements.installed
SYSTEM_PACKAGES := docker-registry skopeo
PYTEST_ARGS ?=
SANITY_ARGS ?=
LINT_ARGS ?=
# ansible-lint, antsibull-changelog and ansible-builder pull in ~50 packages (black, pydantic,
# rich...): they live in a venv of their own, so they never change what the tests run with.
# Same stamp scheme as .venv: pip runs again only when tests/lint-requirements.txt changes.
LINT_VENV  := .venv-lint
LINT_PY    := $(LINT_VENV)/bin/python
LINT_STAMP := $(LINT_VENV)/.requirements.installed
# The oldest claimed ansible-core, in a venv of its own (same stamp scheme).
CORE_VENV  := .venv-core-oldest
CORE_PY    := $(CORE_VENV)/bin/python
CORE_STAMP := $(CORE_VENV)/.requirements.installed
# matplotlib for the benchmark chart (bench/chart.py), in a venv of its own (same stamp scheme):
# never a runtime or test dependency.
BENCH_VENV  := .venv-bench
BENCH_PY    := $(BENCH_VENV)/bin/python
BENCH_STAMP := $(BENCH_VENV)/.requirements.installed
# ansible-test integration targets `make test` runs (one keeps the path alive; the pytest drivers run them all).
INTEGRATION_TARGETS ?= image_mirror
# Test files run on both cores: most time is Ansible's CPU-bound controller, not waiting. In the
# order the root conftest gives (longest files first): xdist's own order, most tests first, started
# the one-test files that run for a minute and a half last.
PYTEST_PARALLEL ?= -n 2 --dist loadfile --no-loadscope-reorder
PYTEST := $(VPY) -m pytest -q -ra $(PYTEST_PARALLEL) $(PYTEST_ARGS)

# pytest exits 5 when it collected no test; an empty suite is not a failure here
# (e.g. tests/unit before anyone has written a unit test).
define run_pytest
	if [ ! -e $(1) ]; then echo "pytest: $(1) does not exist yet (nothing to run)"; exit 0; fi; \
	rc=0; $(PYTEST) $(1) || rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "pytest: no tests collected in $(1) (not an error)"; rc=0; fi; \
	exit $$rc
endef

.PHONY: deps system-deps venv units integration test demo sanity sanity-system-deps clean
.PHONY: lint lint-venv galaxy changelog core-venv ansible-test-integration ee-tarball
.PHONY: bench bench-smoke bench-venv

deps: system-deps venv

# Install the registry and skopeo from Debian only when one of them is missing, so a
# machine that has them never touches apt. python3-venv is added when the interpreter
# cannot create a venv (Debian's python3 without ensurepip).
system-deps:
	@missing=""; \
	for bin in $(SYSTEM_PACKAGES); do command -v $$bin >/dev/null 2>&1 || missing="$$missing $$bin"; done; \
	if ! $(PYTHON) -c 'import ensurepip, venv' >/dev/null 2>&1; then missing="$$missing python3-venv"; fi; \
	if [ -z "$$missing" ]; then exit 0; fi; \
	if [ "$$(id -u)" -ne 0 ]; then \
	  echo "make deps: missing:$$missing. Install them as root:" >&2; \
	  echo "  apt-get update && apt-get install -y --no-install-recommends$$missing" >&2; \
	  exit 1; \
	fi; \
	echo "make deps: installing$$missing with apt"; \
	apt-get update; \
	DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends $$missing

venv: $(STAMP)

$(STAMP): tests/requirements.txt
	@if ! [ -x $(VPY) ] || ! $(VPY) -c '' >/dev/null 2>&1; then \
	  echo "make deps: creating $(VENV)"; rm -rf $(VENV); $(PYTHON) -m venv $(VENV); \
	fi
	$(VPY) -m pip install --disable-pip-version-check -q -r tests/requirements.txt
	cp tests/requirements.txt $@

units: venv
	@$(call run_pytest,tests/unit)

integration: deps core-venv
	@$(call run_pytest,tests/integration)

# Sanity, lint, the Galaxy build and the unit tests first, the integration tests last, so the run closes
# on their pytest summary line. To keep CI within its 15 minutes on 2 cores: apt first (one dpkg at a
# time), then the three venvs at once (pip waits on the index and the disk more than on the CPU), and
# sanity (one core, the longest check, about 135 s) beside lint, the Galaxy build, ansible-test
# integration and the unit tests on one process (about 55 + 65 s), so neither core waits; its log
# follows theirs. (Running these checks beside the integration tests instead was slower: 17 min
# against 14, pytest's workers slowed.)
test: system-deps sanity-system-deps
	$(MAKE) --no-print-directory -j3 venv lint-venv core-venv
	@sanity_log=$$(mktemp); tests/sanity/run.sh > "$$sanity_log" 2>&1 & sanity=$$!; \
	rc=0; { tests/lint/run.sh $(LINT_ARGS) && tests/galaxy/run.sh && \
	        tests/ansible-test/run.sh $(INTEGRATION_TARGETS) && \
	        $(VPY) -m pytest -q -ra $(PYTEST_ARGS) tests/unit; } || rc=$$?; \
	sanity_rc=0; wait $$sanity || sanity_rc=$$?; \
	echo "--- ansible-test sanity (ran beside the checks and unit tests above) ---"; cat "$$sanity_log"; rm -f "$$sanity_log"; \
	if [ $$sanity_rc -ne 0 ]; then echo "ansible-test sanity FAILED (exit $$sanity_rc)" >&2; exit $$sanity_rc; fi; \
	exit $$rc
	@$(call run_pytest,tests/integration)

# The README's main command: a local mirror between two loopback registries, end to end.
demo: deps
	$(VPY) demo/run_demo.py

# ansible-test sanity for the Python in .venv (--python X.Y, --venv): see tests/sanity/run.sh.
sanity: deps sanity-system-deps
	tests/sanity/run.sh $(SANITY_ARGS)

# shellcheck, for ansible-test's shellcheck test (which is skipped, with a warning, without it).
sanity-system-deps:
	@command -v shellcheck >/dev/null 2>&1 && exit 0; \
	if [ "$$(id -u)" -ne 0 ]; then \
	  echo "make sanity: shellcheck missing (apt-get install shellcheck); its test will be skipped" >&2; exit 0; \
	fi; \
	echo "make sanity: installing shellcheck with apt"; \
	apt-get update; \
	DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends shellcheck

lint-venv: $(LINT_STAMP)

$(LINT_STAMP): tests/lint-requirements.txt
	@if ! [ -x $(LINT_PY) ] || ! $(LINT_PY) -c '' >/dev/null 2>&1; then \
	  echo "make lint-venv: creating $(LINT_VENV)"; rm -rf $(LINT_VENV); $(PYTHON) -m venv $(LINT_VENV); \
	fi
	$(LINT_PY) -m pip install --disable-pip-version-check -q -r tests/lint-requirements.txt
	cp tests/lint-requirements.txt $@

core-venv: $(CORE_STAMP)

$(CORE_STAMP): tests/core-oldest-requirements.txt
	@if ! [ -x $(CORE_PY) ] || ! $(CORE_PY) -c '' >/dev/null 2>&1; then \
	  echo "make core-venv: creating $(CORE_VENV)"; rm -rf $(CORE_VENV); $(PYTHON) -m venv $(CORE_VENV); \
	fi
	$(CORE_PY) -m pip install --disable-pip-version-check -q -r tests/core-oldest-requirements.txt
	cp tests/core-oldest-requirements.txt $@

# examples/requirements.yml installs the collection from this tarball (it is on no collection server yet).
ee-tarball: venv
	@tmp="$$(mktemp -d)"; trap 'rm -rf "$$tmp"' EXIT; \
	$(VENV)/bin/ansible-galaxy collection build --force --output-path "$$tmp" . >/dev/null; \
	mkdir -p examples/collections; mv "$$tmp"/imagepusher-registry-*.tar.gz examples/collections/imagepusher-registry.tar.gz; \
	echo "make ee-tarball: examples/collections/imagepusher-registry.tar.gz"

ansible-test-integration: deps
	tests/ansible-test/run.sh $(INTEGRATION_TARGETS)

lint: lint-venv
	tests/lint/run.sh $(LINT_ARGS)

# Needs .venv (ansible-galaxy, and requests/jsonschema for the module it runs) and .venv-lint
# (ansible-builder, for the execution-environment introspection of the installed copy).
galaxy: deps lint-venv
	tests/galaxy/run.sh

# Check the fragments, then regenerate CHANGELOG.md from changelogs/changelog.yaml.
# `make changelog RELEASE=X.Y.Z` (after bumping galaxy.yml's version) releases instead: the
# fragments move into changelog.yaml under X.Y.Z. antsibull-changelog lists new modules and roles
# with ansible-doc, which finds this collection through a temp ansible_collections/ link.
RELEASE ?=
changelog: lint-venv
	@tmp="$$(mktemp -d)"; trap 'rm -rf "$$tmp"' EXIT; \
	mkdir -p "$$tmp/ansible_collections/imagepusher"; ln -s "$(CURDIR)" "$$tmp/ansible_collections/imagepusher/registry"; \
	export PATH="$(CURDIR)/$(LINT_VENV)/bin:$$PATH" ANSIBLE_COLLECTIONS_PATH="$$tmp"; \
	set -x; antsibull-changelog lint; \
	if [ -n "$(RELEASE)" ]; then antsibull-changelog release --version "$(RELEASE)"; else antsibull-changelog generate; fi; \
	antsibull-changelog lint-changelog-yaml changelogs/changelog.yaml

# Benchmarks against skopeo (bench/RESULTS.md, each script its own block; numbers in bench/results.json,
# chart in bench/results.svg); not part of make test. bench-smoke checks the harness (its test:
# tests/integration/test_bench_smoke.py). The fleet rows (bench/fleet.py) take BENCH_FLEET_IMAGES
# (default 300) and BENCH_FLEET_ROUNDS (default 3); BENCH_ARGS goes to bench/run.py (e.g. --rounds 3).
BENCH_ARGS ?=
bench: deps bench-venv
	$(VPY) bench/run.py $(BENCH_ARGS)
	$(VPY) bench/fleet.py

# bench/fleet.py --smoke (6 images, ~15 s more on an idle machine) checks the fleet harness the same way.
bench-smoke: deps bench-venv
	$(VPY) bench/run.py --smoke

bench-venv: $(BENCH_STAMP)

$(BENCH_STAMP): bench/requirements.txt
	@if ! [ -x $(BENCH_PY) ] || ! $(BENCH_PY) -c '' >/dev/null 2>&1; then \
	  echo "make bench-venv: creating $(BENCH_VENV)"; rm -rf $(BENCH_VENV); $(PYTHON) -m venv $(BENCH_VENV); \
	fi
	$(BENCH_PY) -m pip install --disable-pip-version-check -q -r bench/requirements.txt
	cp bench/requirements.txt $@

clean:
	rm -rf $(VENV) $(LINT_VENV) $(CORE_VENV) $(BENCH_VENV) .pytest_cache tests/output
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
