# -*- coding: utf-8 -*-
# Copyright: contributors to imagepusher.registry
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Request rates per registry: our own limit (`requests_per_second`) and the quota a registry announces.

Docker Hub counts pulls and says how many are left in every answer to a manifest GET:

    ratelimit-limit: 100;w=21600        ratelimit-remaining: 76;w=21600

The IETF drafts that followed say the same in other words: `RateLimit-Limit: 100`,
`RateLimit-Remaining: 76`, `RateLimit-Reset: 3600` (draft 03), a structured
`RateLimit: limit=100, remaining=76, reset=3600` (drafts 05 and 06), or
`RateLimit: "default";r=76;t=3600` with `RateLimit-Policy: "default";q=100;w=21600`
(draft 07 and later). Every form is read into one Quota, remembered per registry, so
the result can say what is left and a 429 with nothing left can say why instead of
spending retries that cannot succeed before the window resets.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import re
import threading
import time

from ansible_collections.imagepusher.registry.plugins.module_utils._errors import RateLimitError
from ansible_collections.imagepusher.registry.plugins.module_utils._retry import parse_retry_after


class TokenBucket:
    """At most `rate` requests a second, one token at a time: requests are spaced 1/rate apart.

    A burst of one keeps the promise simple to check: no second-long window sees more than
    rate + 1 requests, whatever number of threads ask at once. Thread-safe; each caller
    reserves its slot under the lock and sleeps outside it.
    """

    def __init__(self, rate, clock=time.monotonic, sleep=time.sleep):
        if not rate > 0:
            raise ValueError("rate must be positive")
        self.interval = 1.0 / rate
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._next = None  # when the next request may go

    def acquire(self):
        """Wait until this request's slot; returns the seconds waited."""
        with self._lock:
            now = self._clock()
            slot = now if self._next is None or self._next <= now else self._next
            self._next = slot + self.interval
        wait = slot - now
        if wait > 0:
            self._sleep(wait)
        return max(wait, 0.0)


class Quota:
    """What a registry announced: limit and remaining requests, window and reset in seconds (None when unsaid)."""

    __slots__ = ("limit", "remaining", "window", "reset")

    def __init__(self, limit=None, remaining=None, window=None, reset=None):
        self.limit, self.remaining, self.window, self.reset = limit, remaining, window, reset

    @property
    def exhausted(self):
        return self.remaining is not None and self.remaining <= 0

    def as_dict(self):
        return dict((name, getattr(self, name)) for name in self.__slots__ if getattr(self, name) is not None)

    def describe(self):
        """E.g. '0 of 100 requests left in a 21600 s window, resets in 120 s'."""
        text = "no quota announced"
        if self.remaining is not None:
            text = "%d of %s requests left" % (self.remaining, self.limit if self.limit is not None else "?")
        if self.window is not None:
            text += " in a %d s window" % self.window
        if self.reset is not None:
            text += ", resets in %d s" % self.reset
        return text


_NUMBER = re.compile(r"^\s*(\d+)")
_PARAM = re.compile(r"""[;,]\s*([a-z]+)\s*=\s*"?(\d+)""")


def _leading_number(value):
    match = _NUMBER.match(value or "")
    return int(match.group(1)) if match else None


def _params(value):
    """{name: int} of `name=number` parameters (`;w=21600`, `, remaining=5`, `;r=5`)."""
    found = {}
    for name, number in _PARAM.findall(";" + (value or "").lower()):
        found.setdefault(name, int(number))  # the first policy is the one in force (draft 03 lists others after it)
    return found


def parse_quota(headers):
    """The Quota a response's headers announce, or None. `headers` is a case-insensitive mapping."""
    limit_value = headers.get("RateLimit-Limit")
    remaining_value = headers.get("RateLimit-Remaining")
    structured = headers.get("RateLimit")
    if limit_value is None and remaining_value is None and structured is None:
        return None
    quota = Quota(limit=_leading_number(limit_value), remaining=_leading_number(remaining_value),
                  reset=_leading_number(headers.get("RateLimit-Reset")))
    for value in (limit_value, remaining_value):
        window = _params(value).get("w")
        if window is not None:
            quota.window = window
    if structured is not None:
        fields = _params(structured)
        quota.limit = fields.get("limit", quota.limit)
        quota.remaining = fields.get("remaining", fields.get("r", quota.remaining))
        quota.reset = fields.get("reset", fields.get("t", quota.reset))
        policy = _params(headers.get("RateLimit-Policy"))
        quota.limit = policy.get("q", quota.limit)
        quota.window = policy.get("w", quota.window)
    if quota.limit is None and quota.remaining is None:
        return None
    return quota


def refuse_spent_quota(registry, quota, retry_after, cap):
    """Raise RateLimitError for a 429 that retrying cannot cure: the announced quota is spent and the
    registry does not ask us back within the retry cap (`cap` seconds). Else return: the retry table
    handles a 429 like any busy answer (Retry-After honoured)."""
    if quota is None or not quota.exhausted:
        return
    wait = parse_retry_after(retry_after)
    if wait is not None and wait <= cap:
        return
    when = "retrying before it resets cannot succeed" if wait is None else "it asks to wait %d s" % wait
    raise RateLimitError(
        "registry %s refused the request (429 Too Many Requests): its rate limit is used up (%s); %s. "
        "Try again after the reset, log in for a higher quota, or copy fewer images per run"
        % (registry, quota.describe(), when), status=429, registry=registry, rate_limit=quota.as_dict())


class RateLimits:
    """Per registry: the bucket our `requests_per_second` asks for, and the last quota announced."""

    def __init__(self, clock=time.monotonic, sleep=time.sleep):
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._buckets = {}
        self._quotas = {}

    def limit(self, registry, rate):
        """Hold `registry` to `rate` requests a second (None: no limit). The lowest rate asked for wins:
        a mirror whose source and target are one registry keeps the stricter of its two limits."""
        if rate is None:
            return
        with self._lock:
            bucket = self._buckets.get(registry)
            if bucket is None or bucket.interval < 1.0 / rate:
                self._buckets[registry] = TokenBucket(rate, self._clock, self._sleep)

    def wait(self, registry):
        """Block until a request to `registry` may go."""
        bucket = self._buckets.get(registry)
        if bucket is not None:
            bucket.acquire()

    def observe(self, registry, headers):
        """Remember the quota in a response's headers; returns it (or None when none was announced)."""
        quota = parse_quota(headers)
        if quota is not None:
            with self._lock:
                self._quotas[registry] = quota
        return quota

    def quota(self, registry):
        return self._quotas.get(registry)

    def report(self):
        """{registry: {limit, remaining, window, reset}} of every registry that announced a quota."""
        with self._lock:
            return dict((registry, quota.as_dict()) for registry, quota in sorted(self._quotas.items()))
