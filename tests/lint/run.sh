#!/usr/bin/env bash
# Lint the role, the playbooks and the collection's metadata (see `make lint`), offline.
#
#   tests/lint/run.sh [extra ansible-lint args]
#
# 1. ansible-lint (profile and rules in .ansible-lint) on the YAML files of roles/ and meta/,
#    demo/*.yml, examples/*.yml (and docs/*.yml when there are some), galaxy.yml and
#    changelogs/changelog.yaml.
#    ansible-lint resolves imagepusher.registry.* through ANSIBLE_COLLECTIONS_PATH: a temp dir
#    holding ansible_collections/imagepusher/registry -> this work tree. `offline: true` in
#    .ansible-lint keeps it from installing requirements or refreshing schemas over the
#    network; HOME and ANSIBLE_HOME point at a temp dir so no user setting or cache leaks in.
# 2. antsibull-changelog lint on changelogs/ (fragments and changelog.yaml).
# 3. bindep on bindep.txt (parses it; reports packages missing on this machine).
# 4. ansible-builder create on examples/execution-environment.yml into a temp build context:
#    the EE definition is valid for ansible-builder itself, not only for the lint schema, and the
#    context holds the collection built from this checkout (examples/requirements.yml installs that
#    tarball: the collection is on no collection server yet).
#
# Environment: LINT_VENV (default .venv-lint, built by `make lint-venv`).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"
LINT_VENV="${LINT_VENV:-$ROOT/.venv-lint}"
BIN="$LINT_VENV/bin"
if [ ! -x "$BIN/ansible-lint" ]; then
    echo "lint: $BIN/ansible-lint not found (run 'make lint-venv' first)" >&2
    exit 2
fi

WORK="$(mktemp -d "${TMPDIR:-/tmp}/imagepusher-lint-XXXXXX")"
# shellcheck disable=SC2317  # called through the EXIT trap
cleanup() { rm -rf "$WORK"; }
trap cleanup EXIT
mkdir -p "$WORK/collections/ansible_collections/imagepusher" "$WORK/home"
ln -s "$ROOT" "$WORK/collections/ansible_collections/imagepusher/registry"

# Only what this script sets: a developer's ANSIBLE_* settings must not change the result.
while IFS= read -r var; do unset "$var"; done < <(env | sed -n 's/^\(ANSIBLE_[A-Za-z0-9_]*\)=.*/\1/p')
export HOME="$WORK/home"
export ANSIBLE_HOME="$WORK/home/.ansible"
export ANSIBLE_COLLECTIONS_PATH="$WORK/collections"
export ANSIBLE_LOCAL_TEMP="$WORK/tmp"
export ANSIBLE_NOCOLOR=1
export NO_COLOR=1
export PATH="$BIN:$PATH"

# Files, not directories: ansible-lint warns about every directory it expands.
targets=(galaxy.yml)
while IFS= read -r -d '' f; do targets+=("$f"); done \
    < <(find roles meta -type f \( -name '*.yml' -o -name '*.yaml' \) -print0 | sort -z)
for pattern in demo/*.yml examples/*.yml docs/*.yml changelogs/changelog.yaml; do
    for f in $pattern; do [ -e "$f" ] && targets+=("$f"); done
done

rc=0
echo "lint: ansible-lint ${targets[*]}"
"$BIN/ansible-lint" --nocolor "$@" "${targets[@]}" || rc=1

echo "lint: antsibull-changelog lint"
"$BIN/antsibull-changelog" lint || rc=1
if [ -e changelogs/changelog.yaml ]; then
    "$BIN/antsibull-changelog" lint-changelog-yaml changelogs/changelog.yaml || rc=1
fi

echo "lint: bindep bindep.txt"
# exit 1 only lists packages missing here (a build machine need not have them); 2+ is an error
bindep_rc=0
"$BIN/bindep" --file bindep.txt --brief >"$WORK/bindep.out" 2>&1 || bindep_rc=$?
if [ "$bindep_rc" -gt 1 ]; then cat "$WORK/bindep.out" >&2; rc=1; fi

echo "lint: ansible-builder create -f examples/execution-environment.yml (with the collection built from this checkout)"
# As `make ee-tarball` does, into a copy of examples/: the EE installs the collection from that tarball.
cp -r examples "$WORK/examples"
mkdir -p "$WORK/examples/collections" "$WORK/galaxy-build"
"$BIN/ansible-galaxy" collection build --force --output-path "$WORK/galaxy-build" . >/dev/null
mv "$WORK"/galaxy-build/imagepusher-registry-*.tar.gz "$WORK/examples/collections/imagepusher-registry.tar.gz"
if (cd "$WORK/examples" && "$BIN/ansible-builder" create -f execution-environment.yml --context "$WORK/ee-context" \
        --output-filename Containerfile) >"$WORK/builder.out" 2>&1; then
    for f in Containerfile _build/requirements.yml _build/collections/imagepusher-registry.tar.gz; do
        [ -s "$WORK/ee-context/$f" ] || { echo "lint: ansible-builder wrote no $f" >&2; rc=1; }
    done
    # the context carries this checkout's collection, and the galaxy stage installs it from there
    cmp -s "$WORK/examples/collections/imagepusher-registry.tar.gz" \
        "$WORK/ee-context/_build/collections/imagepusher-registry.tar.gz" \
        || { echo "lint: the EE context does not hold the collection built from this checkout" >&2; rc=1; }
    tar -xzOf "$WORK/ee-context/_build/collections/imagepusher-registry.tar.gz" MANIFEST.json 2>/dev/null \
        | grep -q '"namespace": "imagepusher"' \
        || { echo "lint: the EE context's tarball is not imagepusher.registry" >&2; rc=1; }
    grep -q 'ansible-galaxy collection install .*-r requirements.yml' "$WORK/ee-context/Containerfile" \
        || { echo "lint: the Containerfile does not install requirements.yml's collections" >&2; rc=1; }
    grep -qx '  - name: ./collections/imagepusher-registry.tar.gz' "$WORK/ee-context/_build/requirements.yml" \
        || { echo "lint: requirements.yml does not install the tarball from the context" >&2; rc=1; }
    if grep -qE '^[[:space:]-]*name:[[:space:]]*imagepusher\.registry' "$WORK/ee-context/_build/requirements.yml"; then
        echo "lint: requirements.yml installs imagepusher.registry from a collection server" >&2; rc=1
    fi
else
    cat "$WORK/builder.out" >&2; rc=1
fi

if [ $rc -eq 0 ]; then echo "lint: passed (${SECONDS}s)"; else echo "lint: FAILED (${SECONDS}s)" >&2; fi
exit $rc
