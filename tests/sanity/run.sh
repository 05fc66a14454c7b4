#!/usr/bin/env bash
# Run `ansible-test sanity` for imagepusher.registry, offline-capable (see `make sanity`).
#
#   tests/sanity/run.sh [extra ansible-test sanity args, e.g. --test pylint]
#
# What it does, and why:
#  1. Writes a pip bootstrap stand-in to ~/.ansible/test/cache/get_pip_<ver>.py. ansible-test
#     bootstraps pip in every venv it creates by downloading get-pip-<ver>.py from a host this
#     project's machines cannot reach; it uses that cache file instead when it exists. The
#     stand-in installs the bundled pip with ensurepip, then upgrades to the pinned pip from
#     the package index the machine's pip configuration names.
#  2. Copies the collection (git-tracked + untracked-but-not-ignored files; never .venv) to
#     <tmp>/ansible_collections/imagepusher/registry/: ansible-test finds the collection
#     namespace and name from that path only (a symlink is resolved away), and lists files
#     with git, so the copy gets `git init` (a commit is not needed: untracked files count).
#  3. Runs `ansible-test sanity --local --python <X.Y>` there. --local runs ansible-test with
#     the .venv interpreter (ansible-core pinned by tests/requirements.txt) and installs nothing
#     into it: every sanity test that needs tools (pylint, yamllint, voluptuous, ...) runs in
#     its own venv that ansible-test builds from its pinned requirements and caches under
#     ~/.ansible/test/venv/, so only the first run on a machine pays for building them.
#     --venv works offline as well (with the stand-in above) but additionally rebuilds a
#     controller venv inside the temp copy on every run (~35 s more here, since the copy is
#     new each time) for no isolation the sanity venvs do not already give.
#     SANITY_ENV=venv selects it anyway.
#  4. Copies the results (the copy's tests/output/ minus .tmp) to ./tests/output/sanity/
#     (git-ignored) for inspection.
#
# Environment: ANSIBLE_TEST (default .venv/bin/ansible-test), SANITY_PYTHON (default: the
# X.Y of the Python that runs ansible-test), SANITY_ENV (local, the default, or venv),
# KEEP_SANITY_TREE=1 keeps the temp copy.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"

ANSIBLE_TEST="${ANSIBLE_TEST:-$ROOT/.venv/bin/ansible-test}"
if [ ! -x "$ANSIBLE_TEST" ]; then
    echo "sanity: $ANSIBLE_TEST not found (run 'make deps' first)" >&2
    exit 2
fi
VENV_PY="$(dirname "$ANSIBLE_TEST")/python"
SANITY_PYTHON="${SANITY_PYTHON:-$("$VENV_PY" -c 'import sys; print("%d.%d" % sys.version_info[:2])')}"
SANITY_ENV="${SANITY_ENV:-local}"
case "$SANITY_ENV" in
    local|venv) ;;
    *) echo "sanity: SANITY_ENV must be 'local' or 'venv', not '$SANITY_ENV'" >&2; exit 2 ;;
esac

# --- 1. pip bootstrap stand-in ------------------------------------------------------------
# The version is the one this ansible-test pins (get_venv_packages()['pip']); read it from
# ansible-test itself so an ansible-core update cannot leave a stale file name behind.
PIP_VERSION="$("$VENV_PY" - "$SANITY_PYTHON" <<'EOF'
import sys
from ansible_test._internal.python_requirements import get_venv_packages
from ansible_test._internal.host_configs import NativePythonConfig
print(get_venv_packages(NativePythonConfig(version=sys.argv[1]))['pip'])
EOF
)"
CACHE_DIR="$HOME/.ansible/test/cache"
GET_PIP="$CACHE_DIR/get_pip_${PIP_VERSION//./_}.py"
mkdir -p "$CACHE_DIR"
cat > "$GET_PIP.tmp" <<'EOF'
"""Offline stand-in for get-pip.py, written by imagepusher.registry tests/sanity/run.sh.

ansible-test runs it as `python get_pip_X_Y.py [pip options] pip==X.Y --no-setuptools --no-wheel`
inside a venv created without pip.
"""
import ensurepip
import os
import subprocess
import sys

ensurepip.bootstrap(upgrade=True)
# ensurepip sets PIP_CONFIG_FILE=/dev/null, which would hide the machine's pip configuration
# (package index, CA bundle) from the install below.
os.environ.pop("PIP_CONFIG_FILE", None)
args = [a for a in sys.argv[1:] if a not in ("--no-setuptools", "--no-wheel")]
sys.exit(subprocess.call([sys.executable, "-m", "pip", "install"] + args))
EOF
mv "$GET_PIP.tmp" "$GET_PIP"

# --- 2. collection copy in a git work tree --------------------------------------------------
# shellcheck source=tests/support/copy_collection.sh
. "$ROOT/tests/support/copy_collection.sh"
collection_copy sanity "${KEEP_SANITY_TREE:-0}"  # sets WORK and COLL

# --- 3. ansible-test sanity -------------------------------------------------------------------
rc=0
(
    cd "$COLL"
    set -x
    "$ANSIBLE_TEST" sanity "--${SANITY_ENV}" --python "$SANITY_PYTHON" --color no "$@"
) || rc=$?

# --- 4. results back to the work tree ----------------------------------------------------------
if [ -d "$COLL/tests/output" ]; then
    # .tmp holds ansible-test's own venv and scratch files: not results.
    rm -rf "$ROOT/tests/output/sanity"
    mkdir -p "$ROOT/tests/output/sanity"
    (cd "$COLL/tests/output" && tar --exclude=./.tmp -cf - .) | tar -xf - -C "$ROOT/tests/output/sanity"
fi

if [ $rc -eq 0 ]; then
    echo "sanity: all ansible-test sanity tests passed"
else
    echo "sanity: ansible-test sanity FAILED (exit $rc); results in tests/output/sanity/" >&2
fi
exit $rc
