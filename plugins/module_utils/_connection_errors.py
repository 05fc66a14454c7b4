# -*- coding: utf-8 -*-
# Copyright: contributors to imagepusher.registry
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Connection failures: which are worth retrying, and a message that says what happened.

A name that does not resolve will not resolve a second later: it fails at once. A refused
connection (a registry that is down, a wrong port, a dead proxy) is retried for a few
seconds at most (_retry.REFUSED_WAIT), whatever `retries` allows; other drops and timeouts
use the whole budget. The message names the proxy a request went through and where its
setting came from (HTTPS_PROXY, https_proxy, ALL_PROXY... as requests reads them, NO_PROXY
considered as _http routes by it), and says how many attempts were made over how long.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import socket
from urllib.parse import urlsplit

from ansible_collections.imagepusher.registry.plugins.module_utils._errors import TransportError
from ansible_collections.imagepusher.registry.plugins.module_utils._http import no_proxy_exempts

DNS = "dns"
REFUSED = "refused"
OTHER = "other"


def _chain(exc):
    """`exc` and every exception behind it: causes, contexts, urllib3's .reason and a ProxyError's inner error."""
    seen, todo = [], [exc]
    while todo:
        current = todo.pop(0)
        if current is None or not isinstance(current, BaseException) or any(current is s for s in seen):
            continue
        seen.append(current)
        todo.extend([current.__cause__, current.__context__, getattr(current, "reason", None)])
        todo.extend(a for a in getattr(current, "args", ()) if isinstance(a, BaseException))
    return seen


def kind(exc):
    """DNS (the name does not resolve), REFUSED (nothing listens), or OTHER."""
    chain = _chain(exc)
    if any(isinstance(e, socket.gaierror) or type(e).__name__ == "NameResolutionError" for e in chain):
        return DNS
    if any(isinstance(e, ConnectionRefusedError) for e in chain):
        return REFUSED
    return OTHER


def through_proxy(exc):
    """Whether the failure was in reaching the proxy (urllib3 or requests ProxyError in the chain)."""
    return any(type(e).__name__ == "ProxyError" for e in _chain(exc))


def retry(exc, budget):
    """Whether to try again after `exc` (the budget's backoff is then slept): never after DNS, briefly after REFUSED."""
    found = kind(exc)
    if found == DNS:
        return False
    if found == REFUSED:
        return budget.retry_refused()
    return budget.retry()


def proxy_setting(url, environ=None):
    """(proxy URL, the variable it came from) that requests uses for `url`, or None (none set, or NO_PROXY exempts it).

    Lower-case variables win over upper-case ones, the URL's scheme over ALL_PROXY, as in requests (urllib).
    """
    environ = os.environ if environ is None else environ
    scheme = url.split("://", 1)[0].lower()
    if _bypassed(url, environ):
        return None
    for key in (scheme, "all"):
        for name in (key + "_proxy", key.upper() + "_PROXY"):
            if environ.get(name):
                return environ[name], name
    return None


def _bypassed(url, environ):
    """NO_PROXY read by the code that routes the requests (_http), so the message and the route agree."""
    no_proxy = environ.get("no_proxy") or environ.get("NO_PROXY")
    return no_proxy_exempts(urlsplit(url).netloc, no_proxy)


def unreachable(exc, url, host, attempts, elapsed, reason, environ=None):
    """The TransportError for a request to `url` (registry `host`) that failed with `exc` after `attempts` over `elapsed` s.

    `reason` is the short, scrubbed text of `exc` (_transport.describe_connection_error).
    """
    found = kind(exc)
    proxy = proxy_setting(url, environ)
    text = "cannot reach registry %s after %d attempt(s) over %.1fs: " % (host, attempts, elapsed)
    if proxy and through_proxy(exc):
        text += "the proxy %s (set by %s) failed: %s; check that proxy, or exempt %s in NO_PROXY" % (
            _scrub(proxy[0]), proxy[1], reason, host.split(":")[0])
        return TransportError(text, registry=host, proxy=_scrub(proxy[0]), proxy_source=proxy[1])
    text += reason
    if found == DNS:
        text += "; the name does not resolve (not retried): check the registry's name"
    elif found == REFUSED:
        text += "; nothing accepts connections there: check the host and port, and that the registry is running"
    if proxy:
        text += " (through the proxy %s, set by %s)" % (_scrub(proxy[0]), proxy[1])
    return TransportError(text, registry=host)


def _scrub(proxy_url):
    """A proxy URL without its credentials (http://user:pass@proxy:3128 -> http://proxy:3128)."""
    scheme, sep, rest = proxy_url.partition("://")
    if not sep:
        scheme, rest = "", proxy_url
    host = rest.split("/", 1)[0].rsplit("@", 1)[-1]
    return (scheme + "://" if sep else "") + host
