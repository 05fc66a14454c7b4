# -*- coding: utf-8 -*-
# Copyright: contributors to imagepusher.registry
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What a module start does not import (issue 16), held by a test so it does not creep back.

Every module start pays for what it imports: AnsiballZ runs modules from a zip, so each of our
files is compiled again on every run, and jsonschema alone cost 0.1 s and 3 MB. Each module is
imported in a fresh interpreter, as Ansible starts it, and sys.modules is read.
"""

import json
import subprocess
import sys

import pytest

from tests.support.ansible import make_collections_dir

PREFIX = "ansible_collections.imagepusher.registry.plugins."
MODULES = ["image_mirror", "image_pull", "image_push", "image_info", "image_cache"]
# Imported only where used: manifests the quick check cannot vouch for (_schema_check.py),
# entries with tag rules, referrers, foreign layers fetched, a "did you mean" hint, the fleet of
# image_mirror's list (never a pull's or a push's); requests'
# character-set detectors (see _requests_lib.py).
DETECTORS = ["charset_normalizer", "chardet"]
NOT_AT_THE_START = {
    "image_mirror": ["jsonschema", "difflib", PREFIX + "module_utils._tag_rules", PREFIX + "module_utils._semver",
                     PREFIX + "module_utils._referrers", PREFIX + "module_utils._foreign", PREFIX + "module_utils._close_names"],
    "image_pull": ["jsonschema", "difflib", PREFIX + "module_utils._referrers", PREFIX + "module_utils._foreign",
                   PREFIX + "module_utils._close_names", PREFIX + "module_utils._tag_rules", PREFIX + "module_utils._fleet"],
    "image_push": ["jsonschema", "difflib", PREFIX + "module_utils._referrers", PREFIX + "module_utils._foreign",
                   PREFIX + "module_utils._close_names", PREFIX + "module_utils._tag_rules", PREFIX + "module_utils._fleet"],
    "image_info": ["jsonschema"],
    "image_cache": ["jsonschema"],
}
for _names in NOT_AT_THE_START.values():
    _names.extend(DETECTORS)

SCRIPT = """
import importlib, json, sys
importlib.import_module(sys.argv[1])
print(json.dumps(sorted(sys.modules)))
"""

# What a real mirror then parses: an image manifest of the common shape, and an index.
PARSE = """
import importlib, json, sys
from ansible_collections.imagepusher.registry.plugins.module_utils import _manifest
importlib.import_module(sys.argv[1])
digest = "sha256:" + "a" * 64
layer = {"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": digest, "size": 10}
manifest = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": dict(layer, mediaType="application/vnd.oci.image.config.v1+json"), "layers": [layer]}
index = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
         "manifests": [dict(layer, mediaType=manifest["mediaType"], platform={"os": "linux", "architecture": "amd64"})]}
_manifest.parse(json.dumps(manifest).encode())
_manifest.parse(json.dumps(index).encode())
print(json.dumps(sorted(sys.modules)))
"""


@pytest.fixture(scope="module")
def collections_dir(tmp_path_factory):
    return make_collections_dir(tmp_path_factory.mktemp("collections"))


def imported(collections_dir, script, module):
    proc = subprocess.run([sys.executable, "-c", script, PREFIX + "modules." + module], capture_output=True, text=True,
                          env={"PYTHONPATH": str(collections_dir), "PATH": "/usr/bin:/bin"}, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return set(json.loads(proc.stdout))


@pytest.mark.parametrize("module", MODULES)
def test_a_module_start_does_not_import_what_only_some_runs_need(collections_dir, module):
    modules = imported(collections_dir, SCRIPT, module)
    assert PREFIX + "modules." + module in modules and PREFIX + "module_utils._manifest" in modules
    assert "requests" not in modules and "urllib3" not in modules  # the HTTP layer is chosen when a Transport is made
    assert sorted(name for name in NOT_AT_THE_START[module] if name in modules) == []


# A module's run as far as HTTP goes: its imports, a Transport, a request answered, a request refused
# (the message path: _connection_errors names proxies), over plain HTTP and TLS without verification.
SEND = """
import http.server, importlib, json, socket, sys, threading
importlib.import_module(sys.argv[1])
from ansible_collections.imagepusher.registry.plugins.module_utils import _errors, _transport


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args):
        pass


server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
threading.Thread(target=server.serve_forever, daemon=True).start()
closed = socket.socket()
closed.bind(("127.0.0.1", 0))
transport = _transport.Transport(timeout=5, retries=0, validate_certs=False)
response = transport.request("GET", "http://127.0.0.1:%d/v2/" % server.server_port, "reg.test", stream=True)
assert b"".join(_transport.iter_body(response, "reg.test")) == b"ok"
for url in ("http://127.0.0.1:%d/v2/", "https://127.0.0.1:%d/v2/"):
    try:
        transport.request("GET", url % closed.getsockname()[1], "reg.test", retry=False)
    except _errors.TransportError:
        pass
transport.close()
print(json.dumps(sorted(sys.modules)))
"""


def sent(collections_dir, module, layer, environ=None):
    env = {"PYTHONPATH": str(collections_dir), "PATH": "/usr/bin:/bin", "IMAGEPUSHER_HTTP": layer}
    env.update(environ or {})
    proc = subprocess.run([sys.executable, "-c", SEND, PREFIX + "modules." + module], capture_output=True, text=True,
                          env=env, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return set(json.loads(proc.stdout))


@pytest.mark.parametrize("module", ["image_mirror", "image_pull"])
def test_a_run_on_the_http_client_never_imports_requests_or_urllib3(collections_dir, module):
    modules = sent(collections_dir, module, "client")
    assert PREFIX + "module_utils._http" in modules and "http.client" in modules
    assert sorted(name for name in modules if name.split(".")[0] in ("requests", "urllib3")) == []
    assert PREFIX + "module_utils._requests_layer" not in modules and PREFIX + "module_utils._requests_lib" not in modules


def test_a_run_on_requests_imports_it(collections_dir):
    """The way back (IMAGEPUSHER_HTTP=requests) loads requests when the Transport is made: the test above can see it."""
    modules = sent(collections_dir, "image_pull", "requests")
    assert "requests" in modules and "urllib3" in modules and PREFIX + "module_utils._requests_layer" in modules


def test_parsing_the_common_manifests_does_not_import_jsonschema(collections_dir):
    modules = imported(collections_dir, PARSE, "image_mirror")
    assert "jsonschema" not in modules


@pytest.mark.parametrize("module", ["image_mirror", "image_pull", "image_push"])
def test_a_run_without_proxy_variables_never_imports_urllib_request(collections_dir, module):
    """urllib.request (and urllib.error) only reads *_proxy variables for us: without one it is not imported."""
    modules = sent(collections_dir, module, "client")
    assert PREFIX + "module_utils._http" in modules
    assert "urllib.request" not in modules and "urllib.error" not in modules


def test_a_run_with_a_proxy_variable_imports_urllib_request(collections_dir):
    """...and with one it is (the test above can see it); no_proxy keeps the loopback requests direct."""
    modules = sent(collections_dir, "image_pull", "client", {"https_proxy": "http://127.0.0.1:9", "no_proxy": "127.0.0.1"})
    assert "urllib.request" in modules
