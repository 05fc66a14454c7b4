# -*- coding: utf-8 -*-
# Copyright: contributors to imagepusher.registry
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""One retry policy: which answers are worth retrying, how long to wait, and how often.

Retries are decided by a status table, not by catching everything: 408, 429 and 5xx
(and connection-level failures, which the transport sees as exceptions) are retried;
any other 4xx is the caller's to handle.  Waits are capped exponential backoff with
jitter, or the server's Retry-After, clamped to the same cap.

A RetryBudget is what one transfer may spend: the requests of a blob download, its
resumes after a drop, the restarts of an upload all draw from the same one, so the
worst case is `retries` waits per transfer, whatever mix of failures it meets.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import email.utils
import random
import time

RETRY_STATUSES = frozenset([408, 429, 500, 502, 503, 504])
# Seconds of backoff one transfer spends on refused connections, whatever `retries` allows: a registry
# restarting comes back within that, a wrong host or port never does (18.5 s with retries=5 before).
REFUSED_WAIT = 3.0


def should_retry_status(status):
    return status in RETRY_STATUSES


def parse_retry_after(value, now=None):
    """Seconds to wait from a Retry-After header (delta-seconds or an HTTP date), or None."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when is None:
        return None
    now = time.time() if now is None else now
    return max(0.0, when.timestamp() - now)


def backoff_delay(attempt, base, cap, retry_after=None):
    """Delay before retry number `attempt` (0-based): Retry-After if given, else jittered 2^n; never above cap."""
    if retry_after is not None:
        return min(max(retry_after, 0.0), cap)
    delay = base * (2 ** attempt)
    return min(cap, delay * (0.5 + random.random() / 2))


class RetryBudget:
    """The retries one transfer may still make; spent, never refilled.

    `on_retry()` is called for every retry taken (the transport counts them for the
    module result); `sleep` is injectable so tests do not wait.
    """

    def __init__(self, retries, base=0.5, cap=30.0, sleep=time.sleep, on_retry=None):
        self.retries = max(0, retries)
        self.base = base
        self.cap = cap
        self.spent = 0
        self.refused_waited = 0.0
        self._sleep = sleep
        self._on_retry = on_retry

    @property
    def remaining(self):
        return self.retries - self.spent

    def retry(self, retry_after=None):
        """True when one more retry is allowed: it is then counted and its backoff slept.

        The backoff grows with what this transfer has spent already, so a download that
        keeps dropping waits longer each time, as one request retried in a loop would.
        """
        if self.spent >= self.retries:
            return False
        self._take(backoff_delay(self.spent, self.base, self.cap, retry_after))
        return True

    def retry_refused(self):
        """retry() for a refused connection: all such waits together stay within REFUSED_WAIT seconds."""
        left = REFUSED_WAIT - self.refused_waited
        if self.spent >= self.retries or left <= 0:
            return False
        delay = min(backoff_delay(self.spent, self.base, self.cap), left)
        self.refused_waited += delay
        self._take(delay)
        return True

    def _take(self, delay):
        self.spent += 1
        self.count()
        self._sleep(delay)

    def count(self):
        """Report a retry that the policy makes whatever the budget (one fresh download after a
        digest mismatch): the result counts it, the budget is not spent by it."""
        if self._on_retry is not None:
            self._on_retry()
