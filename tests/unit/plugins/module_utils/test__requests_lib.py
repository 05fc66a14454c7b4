# -*- coding: utf-8 -*-
# Copyright: contributors to imagepusher.registry
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""_requests_lib: requests without the character-set detector, in a fresh interpreter as a module starts.

(In this test process requests was imported long before, by the test support code.)
"""

import json
import subprocess
import sys

import pytest

from ansible_collections.imagepusher.registry.plugins.module_utils import _requests_lib
from tests.support.ansible import make_collections_dir

IMPORT = "from ansible_collections.imagepusher.registry.plugins.module_utils import _requests_lib\n"

# A body that names no charset, read as requests reads one: .text and .json().
READ = IMPORT + """
import json, sys
requests = _requests_lib.requests
response = requests.models.Response()
response._content = json.dumps({"name": "h\\u00e9llo"}, ensure_ascii=False).encode("utf-8")
response.encoding = None
print(json.dumps({"detectors": sorted(k for k in sys.modules if k.split(".")[0] in ("charset_normalizer", "chardet")),
                  "none_entries": sorted(k for k, v in sys.modules.items() if v is None),
                  "chardet": repr(requests.compat.chardet), "has": _requests_lib.HAS_REQUESTS,
                  "text": response.text, "json": response.json()}))
"""


@pytest.fixture(scope="module")
def collections_dir(tmp_path_factory):
    return make_collections_dir(tmp_path_factory.mktemp("collections"))


def run(collections_dir, script, *flags):
    proc = subprocess.run([sys.executable] + list(flags) + ["-c", script], capture_output=True, text=True,
                          env={"PYTHONPATH": str(collections_dir), "PATH": "/usr/bin:/bin"}, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


def test_requests_comes_without_a_detector_and_without_a_warning(collections_dir):
    proc = run(collections_dir, READ, "-W", "error")  # a warning would be an error here
    found = json.loads(proc.stdout)
    assert found["has"] is True and found["chardet"] == "None"
    assert found["detectors"] == [] and found["none_entries"] == []
    assert proc.stderr == ""


def test_a_body_without_charset_reads_as_utf8(collections_dir):
    found = json.loads(run(collections_dir, READ).stdout)
    assert found["text"] == '{"name": "h\u00e9llo"}'
    assert found["json"] == {"name": "h\u00e9llo"}


def test_the_detector_stays_importable_by_others(collections_dir):
    script = IMPORT + "import charset_normalizer\nprint(charset_normalizer.__name__)\n"
    assert run(collections_dir, script).stdout.strip() == "charset_normalizer"


def test_requests_imported_before_is_left_as_it_is(collections_dir):
    script = "import requests\n" + IMPORT + "print(requests.compat.chardet is not None, _requests_lib.requests is requests)\n"
    assert run(collections_dir, script).stdout.split() == ["True", "True"]


def test_in_this_process_it_is_the_requests_everyone_uses():
    import requests
    assert _requests_lib.requests is requests and _requests_lib.HAS_REQUESTS is True
    assert _requests_lib.DETECTORS == ("charset_normalizer", "chardet")
