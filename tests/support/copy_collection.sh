# shellcheck shell=bash
# Sourced by tests/sanity/run.sh and tests/ansible-test/run.sh (from the repository root).
#
#   collection_copy <label> <keep>
#
# Sets WORK, a new temporary directory (removed when the script exits, unless <keep> is 1, then
# "<label>: kept WORK" is said), and COLL=$WORK/ansible_collections/imagepusher/registry, the copy.
# ansible-test finds the collection's namespace and name from its path only (a symlink is
# resolved away) and lists files with git, so the copy gets the files as git sees them (tracked,
# plus untracked that .gitignore does not exclude), minus .venv and files deleted from the work
# tree but not yet from the index, then `git init`, with tests/output/ (ansible-test's result
# directory, which it insists is ignored) in .gitignore.
collection_copy() {
    _copy_label="$1"
    _copy_keep="$2"
    WORK="$(mktemp -d "${TMPDIR:-/tmp}/imagepusher-${_copy_label// /-}-XXXXXX")"
    trap _collection_copy_cleanup EXIT
    COLL="$WORK/ansible_collections/imagepusher/registry"
    mkdir -p "$COLL"
    git ls-files -z --cached --others --exclude-standard \
        | { grep -zv -e '^\.venv$' -e '^\.venv/' || true; } \
        | while IFS= read -r -d '' f; do [ -e "$f" ] || [ -L "$f" ] && printf '%s\0' "$f"; done \
        | sort -zu \
        | tar --null -T - -cf - \
        | tar -xf - -C "$COLL"
    (
        cd "$COLL" || exit 1
        git init -q
        grep -qxE '/?tests/output/?' .gitignore 2>/dev/null || printf 'tests/output/\n' >> .gitignore
    )
}

# shellcheck disable=SC2317  # called through the EXIT trap
_collection_copy_cleanup() {
    if [ "${_copy_keep:-0}" = 1 ]; then
        echo "$_copy_label: kept $WORK"
    else
        rm -rf "$WORK"
    fi
}
