# -*- coding: utf-8 -*-
# Copyright: contributors to imagepusher.registry
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Foreign layers fetched from their `urls`, for a copy asked to (foreign_layers=fetch).

A foreign (non-distributable) layer names where it lives (`urls`, e.g. Microsoft's servers
for a Windows base layer); registries need not hold it. By default a copy skips it (_plan.SKIP).
Asked to fetch, the copy reads it through ForeignLayerSource: a source endpoint that serves
those layers from their first http(s) url and everything else from the registry. The
download is the cache's usual one (streamed, resumed with Range, digest and size verified
before the blob enters blobs/); no registry credential is ever sent to such a url.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

try:
    from urllib.parse import urlsplit
except ImportError:  # pragma: no cover - Python 2
    from urlparse import urlsplit

from ansible_collections.imagepusher.registry.plugins.module_utils import _tree
from ansible_collections.imagepusher.registry.plugins.module_utils._errors import RegistryError
from ansible_collections.imagepusher.registry.plugins.module_utils._transport import BodyReader

SCHEMES = ("http", "https")


def fetch_url(descriptor):
    """The url a foreign layer is fetched from: its first http or https one; RegistryError without one."""
    for url in descriptor.urls:
        if urlsplit(url).scheme.lower() in SCHEMES and urlsplit(url).hostname:
            return url
    raise RegistryError("foreign layer %s names no http or https url to fetch it from (urls: %s)"
                        % (descriptor.digest, ", ".join(descriptor.urls[:3]) or "none"))


class ForeignLayerSource:
    """A source endpoint: foreign layers learned from a tree come from their url, the rest from `registry`."""

    def __init__(self, registry):
        self.registry = registry  # _endpoints.RegistryEndpoint
        self.urls = {}  # digest -> url

    def __getattr__(self, name):
        # Everything but blob downloads is the registry's (manifests, HEADs, configs, retry counts).
        return getattr(self.registry, name)

    def learn(self, tree):
        """Note where each foreign layer of `tree` is fetched from (raises for one without an http(s) url)."""
        for blob in tree.blobs:
            if _tree.is_foreign(blob):
                self.urls[blob.digest] = fetch_url(blob)

    def opener(self, digest):
        """As RegistryEndpoint.opener: open(offset) -> (body, offset served, close), and the retry budget."""
        url = self.urls.get(digest)
        if url is None:
            return self.registry.opener(digest)
        transport = self.registry.client.transport
        budget = transport.new_budget()
        host = urlsplit(url).netloc

        def open_at(offset):
            headers = {"Range": "bytes=%d-" % offset} if offset else None
            response = transport.request("GET", url, host, headers=headers, stream=True, budget=budget)
            if response.status_code == 206 and offset and _range_start(response.headers.get("Content-Range")) == offset:
                return BodyReader(response, host), offset, response.close
            if response.status_code == 200:
                return BodyReader(response, host), 0, response.close
            response.close()
            raise RegistryError("foreign layer %s: %s answered HTTP %d" % (digest, host, response.status_code),
                                status=response.status_code)

        return open_at, budget


def _range_start(value):
    # "bytes 100-199/200"
    try:
        return int(value.split()[1].split("-")[0])
    except (AttributeError, IndexError, ValueError):
        return None
