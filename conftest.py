"""Root conftest: import paths and markers shared by every test directory.

- The repo root goes on sys.path, so tests import support code as ``from tests.support
  import images`` (there is deliberately no tests/__init__.py).
- A temp dir holding ``ansible_collections/imagepusher/registry`` -> this work tree goes on
  sys.path too, so unit tests import the code under test the way Ansible does:
  ``from ansible_collections.imagepusher.registry.plugins.module_utils._errors import ...``
  (module_utils import each other by that name, so it must resolve in tests as well).
- Tests under tests/integration/ are marked ``integration`` automatically
  (select with ``-m integration`` / ``-m "not integration"``).
"""

import atexit
import shutil
import sys
import tempfile
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from tests.support.ansible import make_collections_dir  # noqa: E402  (needs sys.path above)

# Outside the repo on purpose: a symlink back to the repo inside it would make tools that
# walk the tree (pytest collection, ansible-test, grep -R) loop.
_COLLECTIONS_DIR = make_collections_dir(tempfile.mkdtemp(prefix="imagepusher-pytest-"))
atexit.register(shutil.rmtree, _COLLECTIONS_DIR, ignore_errors=True)
sys.path.insert(1, str(_COLLECTIONS_DIR))

# Ansible's collection loader on that path, before any test touches Ansible (it keeps the first one
# set up): a Templar built by a unit test then finds this collection's filters by their names.
from tests.support import collection_plugins  # noqa: E402

collection_plugins.install()

_INTEGRATION_DIR = REPO_ROOT / "tests" / "integration"


# The longest test files (seconds in a CI run, 2026-12-05), started first: `make test` hands whole files
# to two workers (--dist loadfile, in this order with --no-loadscope-reorder), and one of these starting
# last kept a worker busy for minutes after the other ran out of work. The thousands of small unit tests
# come last and fill the gaps.
_LONGEST_FIRST = ("test_image_pull.py", "test_faults.py", "test_registries_conf.py", "test_bench_smoke.py",
                  "test_bad_options.py", "test_image_mirror_no_cache.py", "test_image_push.py",
                  "test_image_mirror_sync.py", "test_image_cache.py", "test_image_push_source.py", "test_progress.py")


def _start_order(item):
    path = Path(str(item.path))
    if path.name in _LONGEST_FIRST:
        return 0, _LONGEST_FIRST.index(path.name)
    return (1 if _INTEGRATION_DIR in path.parents else 2), 0


def pytest_collection_modifyitems(config, items):
    for item in items:
        if _INTEGRATION_DIR in Path(str(item.path)).parents:
            item.add_marker(pytest.mark.integration)
    items.sort(key=_start_order)  # stable: the order within a file is kept
