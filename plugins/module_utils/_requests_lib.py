# -*- coding: utf-8 -*-
# Copyright: contributors to imagepusher.registry
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""requests, imported without the character-set detector it would load for nothing.

requests imports charset_normalizer (else chardet) when it is itself imported, only to guess
the encoding of a text body that names none (Response.text, apparent_encoding). Ours are
blobs and manifests (bytes), and JSON (UTF-8 by RFC 8259; Response.json() guesses its UTF
flavour without the detector): the guess is never needed, yet the import cost every module
start 2.6 MB and 10-30 ms. So the first import of requests in a process is made here with
both detectors hidden, and requests takes its documented fallback (such a body is read as
UTF-8) without the warning it prints about it. Nothing else changes: once requests is in,
the detectors are importable again, and where requests was imported before, it is left as
it is. Every file that imports requests imports this first.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import sys
import warnings

DETECTORS = ("charset_normalizer", "chardet")


def _import_requests():
    if "requests" in sys.modules:
        import requests
        return requests
    hidden = [name for name in DETECTORS if name not in sys.modules]
    for name in hidden:
        sys.modules[name] = None  # makes "import name" raise ImportError, as if it were not installed
    try:
        with warnings.catch_warnings():
            # requests' RequestsDependencyWarning "Unable to find acceptable character detection dependency".
            warnings.filterwarnings("ignore", message=".*character detection dependency")
            import requests
    finally:
        for name in hidden:
            if name in sys.modules and sys.modules[name] is None:
                del sys.modules[name]
    return requests


try:
    requests = _import_requests()
    HAS_REQUESTS = True
    REQUESTS_IMPORT_ERROR = None
except ImportError as exc:  # pragma: no cover - depends on the host; _transport reports it
    requests = None
    HAS_REQUESTS = False
    REQUESTS_IMPORT_ERROR = exc
