# -*- coding: utf-8 -*-
# Copyright: contributors to imagepusher.registry
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""No function, method, class or attribute in plugins/module_utils that only tests use.

Code that only its own tests call (Handoff.put, UploadLock.held, RegistryClient.ping, ...) is
tested, documented and maintained for nothing, and a test of it can pass while the production
path it stands in for is broken. Each name defined in plugins/module_utils must be read
somewhere in plugins/ other than where it is defined: by its name, as an attribute, or in a
string (getattr, __all__). Names read by the standard library or requests rather than by our
code, and the few kept for tests to look inside production behaviour, are listed below with why.
"""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PLUGINS = ROOT / "plugins"
MODULE_UTILS = PLUGINS / "module_utils"

CALLED_BY_LIBRARIES = {
    "seekable",  # tarfile asks its stream
    "_extfileobj",  # tarfile closes the object it was given unless this says it is not its own
    "rebuild_auth",  # requests, on every redirect
    "create_module", "exec_module", "get_filename",  # the import system, of a loader (_bytecode_cache)
    "chunk_left",  # http.client reads a chunked body by it (_http_response sets it as begin() does)
}
LOOKED_AT_BY_TESTS = {
    "cached_token",  # the token an Authenticator keeps: header_for() would fetch a new one instead
    "connections_made",  # proves keep-alive: one connection serves many requests (_http.Session)
    "contexts_built",  # proves one SSL context serves every connection (the cost NOTES.md measured)
    "files",  # which registries.conf files were read, in which order (drop-ins sorted after the main file)
}


def media_type_names(tree):
    """The media types _media_types.py names: the specs' vocabulary, which tests build images with."""
    for node in tree.body:
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant) and "/" in str(node.value.value):
            yield node.targets[0].id


def definitions(tree):
    """(name, line, member) of every function, class and constant a module_utils file defines, and of
    every attribute of self; member: it belongs to a class (read as an attribute only)."""
    members = set()
    for cls in (node for node in ast.walk(tree) if isinstance(node, ast.ClassDef)):
        for node in cls.body:
            if isinstance(node, ast.FunctionDef):
                members.add(node)
                yield node.name, node.lineno, True
            for target in getattr(node, "targets", ()):
                if isinstance(target, ast.Name):
                    yield target.id, node.lineno, True
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)) and node not in members:
            yield node.name, node.lineno, False
        elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store) and \
                isinstance(node.value, ast.Name) and node.value.id == "self":
            yield node.attr, node.lineno, True
    for node in tree.body:
        for target in getattr(node, "targets", ()):
            if isinstance(target, ast.Name):
                yield target.id, node.lineno, False


def reads():
    """(names, attributes) plugins/ reads: names and attributes in a Load context; string constants
    (getattr, __all__) and imported names count as both."""
    names, attributes = set(), set()
    for path in PLUGINS.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Name) and not isinstance(node.ctx, ast.Store):
                names.add(node.id)
            elif isinstance(node, ast.Attribute) and not isinstance(node.ctx, ast.Store):
                attributes.add(node.attr)
            elif isinstance(node, ast.Constant) and isinstance(node.value, str):
                names.add(node.value)
                attributes.add(node.value)
            elif isinstance(node, ast.alias):
                names.add(node.name)
    return names, attributes


def unread():
    """'file:line name' of what plugins/ defines in module_utils and never reads."""
    names, attributes = reads()
    vocabulary = set(media_type_names(ast.parse((MODULE_UTILS / "_media_types.py").read_text())))
    found = set()
    for path in sorted(MODULE_UTILS.glob("_*.py")):
        for name, line, member in definitions(ast.parse(path.read_text())):
            if name.startswith("__") or name in CALLED_BY_LIBRARIES | LOOKED_AT_BY_TESTS | vocabulary:
                continue
            if name not in attributes and (member or name not in names):
                found.add("%s:%d %s" % (path.name, line, name))
    return sorted(found)


def test_nothing_in_module_utils_is_there_for_tests_only():
    assert unread() == []


def test_each_exception_is_still_needed():
    """An entry of the lists above that nothing defines any more, or that plugins/ now reads, is stale."""
    defined = set()
    for path in MODULE_UTILS.glob("_*.py"):
        defined.update(name for name, _line, _member in definitions(ast.parse(path.read_text())))
    exceptions = CALLED_BY_LIBRARIES | LOOKED_AT_BY_TESTS
    _names, attributes = reads()
    assert sorted(exceptions - defined) == [] and sorted(exceptions & attributes) == []
