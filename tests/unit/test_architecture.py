# -*- coding: utf-8 -*-
# Copyright: contributors to imagepusher.registry
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The shape ../shared/ARCHITECTURE.md asks of plugins/module_utils, held by a test so it stays held.

No import cycle; no edge against the flow (storage below transfers, transfers below jobs);
only _module.py imports Ansible; no file over 600 lines, no function over 60; a unit test
file for every module_utils file.
"""

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
MODULE_UTILS = ROOT / "plugins" / "module_utils"
UNIT_TESTS = ROOT / "tests" / "unit" / "plugins" / "module_utils"
FILES = sorted(p for p in MODULE_UTILS.glob("_*.py"))
IMPORT = re.compile(r"plugins\.module_utils(?:\.|\s+import\s+)(_[a-z_]+)")

# (importer, imported) pairs that would run against the flow reference -> transport ->
# endpoints -> planner -> engine -> jobs: each was there once and was taken out.
AGAINST_THE_FLOW = [
    ("_cache", "_transport"), ("_push", "_pull"), ("_mirror", "_pull"), ("_archive", "_cache_admin"),
    ("_inspect", "_cache_admin"), ("_plan", "_endpoints"), ("_plan", "_engine"), ("_engine", "_endpoints"),
    ("_cache", "_download"), ("_cache", "_upload"), ("_push", "_upload"), ("_pull", "_download"),
]


def imports():
    graph = {}
    for path in FILES:
        found = set(IMPORT.findall(path.read_text()))
        found.discard(path.stem)
        graph[path.stem] = found
    return graph


def test_there_is_no_import_cycle():
    graph = imports()
    cycles = []

    def visit(name, path):
        for child in sorted(graph.get(name, ())):
            if child in path:
                cycles.append(path[path.index(child):] + [child])
            elif len(path) < len(graph):
                visit(child, path + [child])

    for name in graph:
        visit(name, [name])
    assert cycles == []


@pytest.mark.parametrize("importer, imported", AGAINST_THE_FLOW)
def test_no_edge_runs_against_the_flow(importer, imported):
    assert imported not in imports().get(importer, set())


def test_only_the_ansible_glue_imports_ansible():
    importers = sorted(p.name for p in FILES if re.search(r"^\s*(from|import) ansible\.", p.read_text(), re.M))
    assert importers == ["_module.py"]


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_files_and_functions_stay_short(path):
    source = path.read_text()
    assert len(source.splitlines()) <= 600
    long_functions = [(node.name, node.end_lineno - node.lineno + 1) for node in ast.walk(ast.parse(source))
                      if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
                      and node.end_lineno - node.lineno + 1 > 60]
    assert long_functions == []


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_every_module_utils_file_has_a_unit_test_file(path):
    assert (UNIT_TESTS / ("test_%s.py" % path.stem)).is_file()
