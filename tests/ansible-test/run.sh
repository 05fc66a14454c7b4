#!/usr/bin/env bash
# Run `ansible-test integration` for imagepusher.registry on a copy of the collection.
#
#   tests/ansible-test/run.sh [targets...]        (default: image_mirror)
#
# The copy is made as for tests/sanity/run.sh (tests/support/copy_collection.sh: git-visible files, minus .venv, under
# <tmp>/ansible_collections/imagepusher/registry/, `git init`, tests/output/ ignored), then
# `ansible-test integration --local --python <X.Y>` runs there with the .venv interpreter. Targets
# that need a registry get it from the setup_registry target (tests/support/setup_registry.py);
# the pytest drivers in tests/integration run the same task files with registries of their own.
#
# Environment: ANSIBLE_TEST (default .venv/bin/ansible-test), INTEGRATION_PYTHON (default: the
# X.Y of the Python that runs ansible-test), KEEP_INTEGRATION_TREE=1 keeps the temp copy.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"

ANSIBLE_TEST="${ANSIBLE_TEST:-$ROOT/.venv/bin/ansible-test}"
if [ ! -x "$ANSIBLE_TEST" ]; then
    echo "ansible-test integration: $ANSIBLE_TEST not found (run 'make deps' first)" >&2
    exit 2
fi
VENV_PY="$(dirname "$ANSIBLE_TEST")/python"
INTEGRATION_PYTHON="${INTEGRATION_PYTHON:-$("$VENV_PY" -c 'import sys; print("%d.%d" % sys.version_info[:2])')}"
if [ $# -eq 0 ]; then
    set -- image_mirror
fi

# shellcheck source=tests/support/copy_collection.sh
. "$ROOT/tests/support/copy_collection.sh"
collection_copy "ansible-test integration" "${KEEP_INTEGRATION_TREE:-0}"  # sets WORK and COLL

rc=0
(
    cd "$COLL"
    # the venv's bin first: ansible-test --local runs ansible-playbook from PATH
    PATH="$(dirname "$ANSIBLE_TEST"):$PATH"
    export PATH
    set -x
    "$ANSIBLE_TEST" integration --local --python "$INTEGRATION_PYTHON" --color no "$@"
) || rc=$?
if [ $rc -eq 0 ]; then
    echo "ansible-test integration: $* passed"
else
    echo "ansible-test integration: $* FAILED (exit $rc)" >&2
fi
exit $rc
