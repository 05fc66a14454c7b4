#!/usr/bin/env bash
# Build the collection as Galaxy would, install the tarball, and run it from the INSTALLED copy.
#
#   tests/galaxy/run.sh        (`make galaxy`; part of `make test`)
#
# 1. `ansible-galaxy collection build` into a temp dir; the tarball must hold the collection's
#    content (modules, role, metadata, EE files, changelog) and none of the development trees
#    and caches that galaxy.yml's build_ignore keeps out (.venv, .venv-lint, tests/output,
#    bench, caches, __pycache__, .git, nested tarballs).
# 2. `ansible-galaxy collection install --offline` of that tarball into a temp collections dir,
#    then `ansible-galaxy collection verify --offline` (installed files match the tarball's
#    FILES.json checksums).
# 3. From a directory outside the work tree, with only that collections dir on
#    ANSIBLE_COLLECTIONS_PATH: `ansible-doc` on every module and the role, then an ad-hoc
#    `ansible localhost -m imagepusher.registry.image_cache -a 'state=present cache_dir=<empty>'`
#    whose JSON result is checked (no images, no blobs, not changed), and which must have run
#    the installed module file.
# 4. When .venv-lint has ansible-builder: `ansible-builder introspect` on the installed
#    collection finds requirements.txt and bindep.txt through meta/execution-environment.yml,
#    as it does when the collection is installed into an execution environment.
#
# Environment: VENV (default .venv: ansible-core and the modules' requirements), LINT_VENV
# (default .venv-lint), KEEP_GALAXY_TREE=1 keeps the temp dir.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"
VENV="${VENV:-$ROOT/.venv}"
LINT_VENV="${LINT_VENV:-$ROOT/.venv-lint}"
PY="$VENV/bin/python"
if [ ! -x "$VENV/bin/ansible-galaxy" ]; then
    echo "galaxy: $VENV/bin/ansible-galaxy not found (run 'make deps' first)" >&2
    exit 2
fi

WORK="$(mktemp -d "${TMPDIR:-/tmp}/imagepusher-galaxy-XXXXXX")"
# shellcheck disable=SC2317  # called through the EXIT trap
cleanup() {
    if [ "${KEEP_GALAXY_TREE:-0}" = 1 ]; then echo "galaxy: kept $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
mkdir -p "$WORK/dist" "$WORK/collections" "$WORK/home" "$WORK/cache" "$WORK/elsewhere"

# Only what this script sets: a developer's ANSIBLE_* settings must not change the result.
while IFS= read -r var; do unset "$var"; done < <(env | sed -n 's/^\(ANSIBLE_[A-Za-z0-9_]*\)=.*/\1/p')
export HOME="$WORK/home"
export ANSIBLE_HOME="$WORK/home/.ansible"
export ANSIBLE_LOCAL_TEMP="$WORK/tmp"
export ANSIBLE_NOCOLOR=1
export LC_ALL=C.UTF-8
fail() { echo "galaxy: FAILED: $*" >&2; exit 1; }

# --- 1. build ---------------------------------------------------------------------------------
"$VENV/bin/ansible-galaxy" collection build --output-path "$WORK/dist" "$ROOT" >"$WORK/build.out" 2>&1 \
    || { cat "$WORK/build.out" >&2; fail "ansible-galaxy collection build"; }
version="$("$PY" -c 'import sys, yaml; print(yaml.safe_load(open(sys.argv[1]))["version"])' galaxy.yml)"
TARBALL="$WORK/dist/imagepusher-registry-$version.tar.gz"
[ -f "$TARBALL" ] || fail "no $TARBALL after the build: $(ls "$WORK/dist")"
tar -tzf "$TARBALL" | sed 's|^\./||' | sort >"$WORK/members.txt"
echo "galaxy: built $(basename "$TARBALL"): $(wc -l <"$WORK/members.txt") members, $(du -k "$TARBALL" | cut -f1) KiB"

# Nothing from development trees or caches.
if grep -E '^(\.venv|\.venv-lint|\.venv-bench|\.git|tests/output|bench|\.benchmarks|\.pytest_cache|\.ansible|\.ci)(/|$)|(^|/)__pycache__(/|$)|\.pyc$|\.tar\.gz$' \
        "$WORK/members.txt" >"$WORK/unwanted.txt"; then
    head -20 "$WORK/unwanted.txt" >&2
    fail "the tarball holds $(wc -l <"$WORK/unwanted.txt") development files (see galaxy.yml build_ignore)"
fi
# Everything a user needs.
for member in MANIFEST.json FILES.json README.md CHANGELOG.md meta/runtime.yml meta/execution-environment.yml \
        requirements.txt bindep.txt plugins/modules/image_pull.py plugins/modules/image_push.py \
        plugins/modules/image_info.py plugins/modules/image_cache.py plugins/module_utils/_module.py \
        plugins/action/image_pull.py plugins/action/image_push.py plugins/action/image_mirror.py \
        plugins/plugin_utils/_progress_action.py \
        roles/mirror_images/tasks/main.yml roles/mirror_images/meta/argument_specs.yml \
        roles/mirror_images/defaults/main.yml; do
    grep -qxF "$member" "$WORK/members.txt" || fail "the tarball lacks $member"
done

# --- 2. install and verify --------------------------------------------------------------------
"$VENV/bin/ansible-galaxy" collection install --offline -p "$WORK/collections" "$TARBALL" \
    >"$WORK/install.out" 2>&1 || { cat "$WORK/install.out" >&2; fail "ansible-galaxy collection install"; }
INSTALLED="$WORK/collections/ansible_collections/imagepusher/registry"
[ -f "$INSTALLED/MANIFEST.json" ] || fail "nothing installed at $INSTALLED"
export ANSIBLE_COLLECTIONS_PATH="$WORK/collections"
export ANSIBLE_COLLECTIONS_SCAN_SYS_PATH=False
"$VENV/bin/ansible-galaxy" collection verify --offline imagepusher.registry >"$WORK/verify.out" 2>&1 \
    || { cat "$WORK/verify.out" >&2; fail "ansible-galaxy collection verify"; }
echo "galaxy: installed and verified at $INSTALLED"

# --- 3. run from the installed copy -----------------------------------------------------------
cd "$WORK/elsewhere"
modules=(image_pull image_push image_info image_cache)
"$VENV/bin/ansible-doc" "${modules[@]/#/imagepusher.registry.}" >"$WORK/doc-modules.txt" 2>&1 \
    || { cat "$WORK/doc-modules.txt" >&2; fail "ansible-doc ${modules[*]}"; }
for doc in "${modules[@]}"; do
    grep -qF "$INSTALLED/plugins/modules/$doc.py" "$WORK/doc-modules.txt" \
        || fail "ansible-doc did not document the installed $doc"
done
"$VENV/bin/ansible-doc" -t role imagepusher.registry.mirror_images >"$WORK/doc-role.txt" 2>&1 \
    || { cat "$WORK/doc-role.txt" >&2; fail "ansible-doc -t role imagepusher.registry.mirror_images"; }
grep -q "mirror_images_auth_file" "$WORK/doc-role.txt" || fail "the installed role's spec lacks mirror_images_auth_file"

# ad hoc; the minimal callback prints `localhost | SUCCESS => {json}`
ANSIBLE_STDOUT_CALLBACK=ansible.builtin.minimal ANSIBLE_LOAD_CALLBACK_PLUGINS=1 \
    "$VENV/bin/ansible" localhost -i localhost, -c local -e "ansible_python_interpreter=$PY" \
    -m imagepusher.registry.image_cache -a "state=present cache_dir=$WORK/cache" \
    >"$WORK/adhoc.out" 2>"$WORK/adhoc.err" || { cat "$WORK/adhoc.out" "$WORK/adhoc.err" >&2; fail "ansible ad hoc image_cache"; }
"$PY" - "$WORK/adhoc.out" "$WORK/cache" <<'PYEOF' || { cat "$WORK/adhoc.out" >&2; fail "unexpected image_cache result"; }
import json
import os
import sys

text = open(sys.argv[1], encoding="utf-8").read()
head, sep, body = text.partition(" => ")
assert sep and head.strip() == "localhost | SUCCESS", head
result = json.loads(body)
cache_dir = os.path.realpath(sys.argv[2])
assert result["changed"] is False, result
assert result["images"] == [], result
assert os.path.realpath(result["cache_dir"]) == cache_dir, result
assert result["usage"]["blobs"] == 0 and result["usage"]["total_bytes"] == 0, result
print("galaxy: image_cache from the installed collection: %s" % json.dumps(
    {k: result[k] for k in ("changed", "images", "cache_dir", "usage")}, sort_keys=True))
PYEOF
# the module that ran is the installed one: ansible-doc above resolved to $INSTALLED, and no
# other copy is reachable (the work tree is not under an ansible_collections/ directory)
case "$ROOT" in */ansible_collections/*) fail "the work tree $ROOT is itself under ansible_collections/: move it";; esac
cd "$ROOT"

# --- 4. what an execution environment would get from the installed collection -----------------
if [ -x "$LINT_VENV/bin/ansible-builder" ]; then
    "$LINT_VENV/bin/ansible-builder" introspect "$WORK/collections" >"$WORK/introspect.out" 2>&1 \
        || { cat "$WORK/introspect.out" >&2; fail "ansible-builder introspect"; }
    for want in 'jsonschema>=' 'ca-certificates' 'python3'; do
        grep -qF "$want" "$WORK/introspect.out" || { cat "$WORK/introspect.out" >&2; fail "ansible-builder introspect did not find $want"; }
    done
    echo "galaxy: ansible-builder introspect finds the collection's Python and system requirements"
else
    echo "galaxy: $LINT_VENV/bin/ansible-builder not found: EE introspection skipped (make lint-venv)"
fi
echo "galaxy: passed (${SECONDS}s)"
