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

_INTEGRATION_DIR = REPO_ROOT / "tests" / "integration"


def pytest_collection_modifyitems(config, items):
    for item in items:
        if _INTEGRATION_DIR in Path(str(item.path)).parents:
            item.add_marker(pytest.mark.integration)
