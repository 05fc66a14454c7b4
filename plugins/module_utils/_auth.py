# -*- coding: utf-8 -*-
# Copyright: contributors to imagepusher.registry
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Registry authentication: WWW-Authenticate challenges, Basic, and Bearer tokens.

The registry tells us how to authenticate by answering 401 with a challenge.  For
Bearer we ask the token service named in the challenge for a token covering exactly
the scopes the operation needs (pull, or pull+push, plus pull on a mount source) and
cache it per (registry, scopes) until it expires.  Secrets stay in this object: they
never appear in an exception message.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import base64
import json
import re
import threading
import time

try:
    from urllib.parse import urlencode
except ImportError:  # pragma: no cover - Python 2
    from urllib import urlencode

from ansible_collections.imagepusher.registry.plugins.module_utils._errors import (
    AuthenticationError,
    AuthorizationError,
    RegistryError,
)
from ansible_collections.imagepusher.registry.plugins.module_utils._transport import iter_body, read_limited

_CHALLENGE_PARAM = re.compile(r'\s*([A-Za-z0-9_\-]+)\s*=\s*("(?:[^"\\]|\\.)*"|[^,\s]*)\s*(?:,|$)')
# A token without expires_in is valid for 60 s (distribution token spec); we renew a bit early.
DEFAULT_TOKEN_LIFETIME = 60
EXPIRY_MARGIN = 10


def parse_challenge(header):
    """Parse a WWW-Authenticate value into (scheme lowercased, {param: value}); None if empty."""
    if not header:
        return None
    header = header.strip()
    match = re.match(r"([A-Za-z][A-Za-z0-9_\-]*)\s*(.*)$", header, re.S)
    if not match:
        return None
    scheme, rest = match.group(1).lower(), match.group(2)
    params = {}
    pos = 0
    while pos < len(rest):
        m = _CHALLENGE_PARAM.match(rest, pos)
        if not m or m.end() == pos:
            break
        key, value = m.group(1).lower(), m.group(2)
        if value.startswith('"'):
            value = re.sub(r"\\(.)", r"\1", value[1:-1])
        params[key] = value
        pos = m.end()
    return scheme, params


class Credentials:
    """Username and password (or identity token) for one registry; repr hides the secret.

    `source` says where they were found ("auth file /root/.docker/config.json", ...) for
    messages; it never holds a secret.
    """

    def __init__(self, username=None, password=None, identity_token=None, source=None):
        self.username = username or None
        self.password = password or None
        self.identity_token = identity_token or None
        self.source = source or None

    @property
    def has_password(self):
        """Basic auth needs both; an identity token alone only works with a token service."""
        return bool(self.username and self.password)

    @property
    def present(self):
        return bool(self.username and self.password) or bool(self.identity_token)

    @property
    def who(self):
        """The name used in messages: the user, or what kind of anonymous/token access it is."""
        if self.username:
            return self.username
        return "the identity token" if self.identity_token else "anonymous"

    def basic_header(self):
        raw = ("%s:%s" % (self.username, self.password)).encode("utf-8")
        return "Basic " + base64.b64encode(raw).decode("ascii")

    def __repr__(self):
        return "Credentials(username=%r, password=%s)" % (self.username, "***" if self.password else None)


class Authenticator:
    """Answers a registry's challenges and holds the resulting tokens for one run.

    Bearer tokens are cached per scope set (one Authenticator serves one registry) until
    `expires_in` says they expire.  Once the registry has told us it wants Bearer, a
    token for a new scope set is fetched before the request, not after a 401.  A 401 to a
    request that carried a token (it expired early, or was revoked) drops that token and
    fetches a new one; the caller retries once.  Threads that hit the same expired token
    at once share one new token.
    """

    def __init__(self, transport, registry, credentials=None):
        self.transport = transport
        self.registry = registry
        self.credentials = credentials or Credentials()
        self._lock = threading.Lock()
        self._challenge = None  # (scheme, params) learned from the last 401
        self._tokens = {}  # frozenset(scopes) -> (token, expires_at)
        self._fetch_locks = {}  # frozenset(scopes) -> Lock: one token fetch per scope set at a time

    def _valid_token(self, key):
        cached = self._tokens.get(key)
        if cached and cached[1] > time.time():
            return cached[0]
        return None

    def _fetch_lock(self, key):
        with self._lock:
            return self._fetch_locks.setdefault(key, threading.Lock())

    def cached_token(self, scopes):
        """The cached, unexpired Bearer token for exactly these scopes, or None (no network)."""
        with self._lock:
            return self._valid_token(frozenset(scopes))

    def header_for(self, scopes):
        """Authorization header value to send for a request needing `scopes`, or None."""
        key = frozenset(scopes)
        with self._lock:
            challenge = self._challenge
            if challenge is None:
                return None
            scheme, params = challenge
            if scheme == "basic":
                return self.credentials.basic_header() if self.credentials.has_password else None
            if scheme != "bearer":
                return None
            token = self._valid_token(key)
        if token is None and params.get("realm"):
            # The registry speaks Bearer: get the token for these scopes now rather than
            # spend a request on a 401 first.  Only realm and service carry over; the scope of
            # an earlier challenge belonged to another request.
            token = self._refresh(key, dict((k, v) for k, v in params.items() if k in ("realm", "service")),
                                  merge_scopes(key), None)
        return "Bearer " + token if token else None

    def answer(self, response, scopes):
        """Handle a 401: learn the challenge, fetch what it asks for. False when retrying is pointless."""
        challenge = parse_challenge(response.headers.get("WWW-Authenticate"))
        if challenge is None:
            return False
        scheme, params = challenge
        with self._lock:
            self._challenge = challenge
        if scheme == "basic":
            if not self.credentials.has_password:
                raise AuthenticationError(
                    "registry %s requires authentication: set username and password, or log in so that an "
                    "auth file holds credentials for it" % self.registry,
                    status=401, registry=self.registry)
            return True
        if scheme == "bearer":
            key = frozenset(scopes)
            wanted = list(scopes) + (params.get("scope") or "").split(" ")
            self._refresh(key, params, merge_scopes(wanted), _sent_token(response))
            return True
        raise AuthenticationError("registry %s asks for unsupported authentication scheme %r"
                                  % (self.registry, scheme), status=401, registry=self.registry)

    def _refresh(self, key, params, scopes, rejected):
        """A valid token for `key`: one another thread just got, else a new one from the token service.

        `rejected` is the token the registry refused (None when none was sent, UNKNOWN when
        we cannot tell): a cached token equal to it (or any, when UNKNOWN) is dropped, a
        different valid one, which another thread fetched meanwhile, is used as it is.
        """
        with self._fetch_lock(key):
            with self._lock:
                token = self._valid_token(key)
                if token is not None and rejected is not UNKNOWN and token != rejected:
                    return token
                self._tokens.pop(key, None)
            token, lifetime = self._fetch_token(params, scopes)
            with self._lock:
                self._tokens[key] = (token, time.time() + max(lifetime - EXPIRY_MARGIN, 1))
            return token

    def _fetch_token(self, params, scopes):
        realm = params.get("realm")
        if not realm or not re.match(r"https?://", realm):
            raise AuthenticationError("registry %s sent a Bearer challenge without a usable realm" % self.registry,
                                      status=401, registry=self.registry)
        query = []
        if params.get("service"):
            query.append(("service", params["service"]))
        for scope in scopes:
            query.append(("scope", scope))
        headers = {}
        if self.credentials.has_password:
            headers["Authorization"] = self.credentials.basic_header()
        if self.credentials.identity_token:
            # OAuth2 refresh-token flow (docker login's identitytoken): POST form.
            data = [("grant_type", "refresh_token"), ("refresh_token", self.credentials.identity_token),
                    ("client_id", "imagepusher"), ("service", params.get("service", ""))]
            data += [("scope", " ".join(scopes))]
            response = self.transport.request("POST", realm, self.registry, data=data, stream=True)
        else:
            response = self.transport.request("GET", _with_query(realm, query), self.registry, headers=headers,
                                              stream=True)
        try:
            # OAuth2 token endpoints answer a refused refresh token with 400 (invalid_grant)
            refused = (401, 403, 400) if self.credentials.identity_token else (401, 403)
            if response.status_code in refused:
                raise AuthenticationError(
                    "authentication failed for %s: the token service refused the credentials of %s%s"
                    % (self.registry, self.credentials.who, self._from()),
                    status=response.status_code, registry=self.registry)
            if response.status_code != 200:
                raise RegistryError("token service of %s answered HTTP %d" % (self.registry, response.status_code),
                                    status=response.status_code, registry=self.registry)
            body = _read_small_json(response, self.registry)
        finally:
            response.close()
        token = body.get("token") or body.get("access_token")
        if not token or not isinstance(token, str):
            raise AuthenticationError("token service of %s returned no token" % self.registry,
                                      status=response.status_code, registry=self.registry)
        try:
            lifetime = int(body.get("expires_in") or DEFAULT_TOKEN_LIFETIME)
        except (TypeError, ValueError):
            lifetime = DEFAULT_TOKEN_LIFETIME
        return token, lifetime

    def _from(self):
        return " (from %s)" % self.credentials.source if self.credentials.source else ""

    def denied(self, scopes, status, challenge_header=None):
        """The error for a request refused although we answered the challenge.

        `challenge_header` is the WWW-Authenticate of that final refusal: whether it says
        insufficient_scope decides between "may not" and "authentication failed".
        """
        who = self.credentials.who
        challenge = parse_challenge(challenge_header) if challenge_header else None
        with self._lock:
            challenge = challenge or self._challenge
        insufficient = bool(challenge and challenge[0] == "bearer" and challenge[1].get("error") == "insufficient_scope")
        if status == 403 or (status == 401 and insufficient):
            return AuthorizationError("%s may not %s" % (who, describe_scopes(scopes)),
                                      status=status, registry=self.registry)
        return AuthenticationError("authentication failed for %s (user %s%s)"
                                   % (self.registry, who, ", credentials from %s" % self.credentials.source
                                      if self.credentials.source else ""),
                                   status=status, registry=self.registry)


UNKNOWN = object()


def _sent_token(response):
    """The Bearer token the refused request carried (requests keeps the prepared request).

    None when it carried none; UNKNOWN when the response does not tell.
    """
    request = getattr(response, "request", None)
    headers = getattr(request, "headers", None)
    if headers is None:
        return UNKNOWN
    value = headers.get("Authorization")
    if value and value[:7].lower() == "bearer ":
        return value[7:]
    return None


def merge_scopes(scopes):
    """Scopes for a token request: one per resource, its actions united; sorted, empty ones dropped.

    'repository:a:pull' and 'repository:a:pull,push' (the challenge's and ours) ask for
    'repository:a:pull,push' once.
    """
    merged = {}
    for scope in scopes:
        if not scope:
            continue
        resource, sep, actions = scope.rpartition(":")
        if not sep or ":" not in resource:
            merged.setdefault(scope, [])
            continue
        known = merged.setdefault(resource, [])
        for action in actions.split(","):
            if action and action not in known:
                known.append(action)
    result = []
    for resource in sorted(merged):
        actions = merged[resource]
        result.append("%s:%s" % (resource, ",".join(sorted(actions))) if actions else resource)
    return result


def describe_scopes(scopes):
    """'pull from a/b' / 'push to a/b' for messages."""
    parts = []
    for scope in scopes:
        bits = scope.split(":")
        if len(bits) >= 3 and bits[0] == "repository":
            actions = bits[-1].split(",")
            repo = ":".join(bits[1:-1])
            parts.append(("push to %s" if "push" in actions else "pull from %s") % repo)
        else:
            parts.append("access %s" % scope)
    return " and ".join(parts)


def _with_query(url, query):
    if not query:
        return url
    return url + ("&" if "?" in url else "?") + urlencode(query)


def _read_small_json(response, registry, limit=1024 * 1024):
    # iter_body: a dropped or stalled answer is a TransportError, never a raw requests exception.
    data = read_limited(iter_body(response, registry, 65536), limit)
    if len(data) > limit:
        raise RegistryError("answer from the token service is larger than %d bytes" % limit)
    try:
        value = json.loads(data.decode("utf-8"))
    except (ValueError, UnicodeDecodeError):
        raise RegistryError("token service answered with invalid JSON")
    if not isinstance(value, dict):
        raise RegistryError("token service answered with JSON that is not an object")
    return value
