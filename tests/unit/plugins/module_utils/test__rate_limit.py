# -*- coding: utf-8 -*-
# Copyright: contributors to imagepusher.registry
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

import threading
import time

import pytest
from requests.structures import CaseInsensitiveDict

from ansible_collections.imagepusher.registry.plugins.module_utils._errors import RateLimitError
from ansible_collections.imagepusher.registry.plugins.module_utils._rate_limit import (
    Quota,
    RateLimits,
    TokenBucket,
    parse_quota,
    refuse_spent_quota,
)
from ansible_collections.imagepusher.registry.plugins.module_utils._transport import Transport
from tests.unit.plugins.module_utils.fake_http import FakeServer, Reply, scripted


class FakeClock:
    """A clock that moves only when something sleeps on it."""

    def __init__(self):
        self.now = 100.0
        self.sleeps = []

    def __call__(self):
        return self.now

    def sleep(self, seconds):
        self.sleeps.append(seconds)


# -- TokenBucket -------------------------------------------------------------

def test_bucket_spaces_requests_evenly_from_the_first():
    clock = FakeClock()
    bucket = TokenBucket(4, clock=clock, sleep=clock.sleep)
    waits = [bucket.acquire() for _attempt in range(5)]
    assert waits == [0.0, 0.25, 0.5, 0.75, 1.0]  # five requests at once: one every quarter second
    assert clock.sleeps == [0.25, 0.5, 0.75, 1.0]


def test_bucket_does_not_save_up_idle_time_for_a_burst():
    clock = FakeClock()
    bucket = TokenBucket(2, clock=clock, sleep=clock.sleep)
    bucket.acquire()
    clock.now += 10  # idle for ten seconds
    assert bucket.acquire() == 0.0
    assert bucket.acquire() == 0.5  # the next one still waits its interval: no burst of 20


def test_bucket_never_lets_a_second_see_more_than_rate_plus_one_across_threads():
    bucket = TokenBucket(20)
    times, lock = [], threading.Lock()

    def worker():
        for _attempt in range(5):
            bucket.acquire()
            with lock:
                times.append(time.monotonic())

    threads = [threading.Thread(target=worker) for _attempt in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    times.sort()
    assert len(times) == 30
    for start in times:
        assert sum(1 for t in times if start <= t < start + 1.0) <= 21
    assert times[-1] - times[0] >= 29 / 20.0 * 0.95  # thirty requests at 20/s take about 1.45 s


@pytest.mark.parametrize("rate", [0, -1])
def test_bucket_refuses_a_rate_that_is_not_positive(rate):
    with pytest.raises(ValueError):
        TokenBucket(rate)


# -- parse_quota ---------------------------------------------------------------

@pytest.mark.parametrize("headers, expected", [
    # Docker Hub
    ({"ratelimit-limit": "100;w=21600", "ratelimit-remaining": "76;w=21600"},
     {"limit": 100, "remaining": 76, "window": 21600}),
    ({"RateLimit-Limit": "200;w=21600", "RateLimit-Remaining": "0;w=21600", "docker-ratelimit-source": "1.2.3.4"},
     {"limit": 200, "remaining": 0, "window": 21600}),
    # IETF draft 03: separate fields
    ({"RateLimit-Limit": "10", "RateLimit-Remaining": "3", "RateLimit-Reset": "42"},
     {"limit": 10, "remaining": 3, "reset": 42}),
    ({"RateLimit-Limit": "10, 10;w=1, 1000;w=3600", "RateLimit-Remaining": "9"},
     {"limit": 10, "remaining": 9, "window": 1}),
    # drafts 05/06: one structured field
    ({"RateLimit": "limit=100, remaining=50, reset=5"}, {"limit": 100, "remaining": 50, "reset": 5}),
    # draft 07 and later: RateLimit with its policy
    ({"RateLimit": '"default";r=50;t=30', "RateLimit-Policy": '"default";q=100;w=60'},
     {"limit": 100, "remaining": 50, "reset": 30, "window": 60}),
    ({"RateLimit": '"default";r=0;t=3600'}, {"remaining": 0, "reset": 3600}),
])
def test_parse_quota_reads_every_form(headers, expected):
    quota = parse_quota(CaseInsensitiveDict(headers))
    assert quota.as_dict() == expected


@pytest.mark.parametrize("headers", [
    {},
    {"Content-Type": "application/json"},
    {"RateLimit-Limit": "lots", "RateLimit-Remaining": "some"},  # nothing numeric: no quota at all
    {"RateLimit": "garbage"},
])
def test_parse_quota_without_a_quota_is_none(headers):
    assert parse_quota(CaseInsensitiveDict(headers)) is None


def test_quota_describes_itself_for_a_message():
    assert Quota(100, 0, 21600).describe() == "0 of 100 requests left in a 21600 s window"
    assert Quota(remaining=0, reset=120).describe() == "0 of ? requests left, resets in 120 s"
    assert Quota(100, 0).exhausted and not Quota(100, 1).exhausted and not Quota(limit=100).exhausted


# -- refuse_spent_quota --------------------------------------------------------

def test_spent_quota_without_retry_after_fails_at_once_with_what_to_do():
    with pytest.raises(RateLimitError) as raised:
        refuse_spent_quota("docker.io", Quota(100, 0, 21600), None, 30.0)
    message = raised.value.message
    assert "registry docker.io" in message and "429" in message
    assert "0 of 100 requests left in a 21600 s window" in message
    assert "log in for a higher quota" in message
    assert raised.value.details["rate_limit"] == {"limit": 100, "remaining": 0, "window": 21600}
    assert raised.value.status == 429


def test_spent_quota_with_a_long_retry_after_fails_naming_the_wait():
    with pytest.raises(RateLimitError, match="asks to wait 3600 s"):
        refuse_spent_quota("docker.io", Quota(100, 0), "3600", 30.0)


@pytest.mark.parametrize("quota, retry_after", [
    (None, None),  # no quota announced: the retry table decides
    (Quota(100, 5), None),  # quota left: a busy answer, retried
    (Quota(100, 0), "2"),  # spent, but the registry asks us back within the cap
])
def test_other_429s_are_left_to_the_retry_table(quota, retry_after):
    refuse_spent_quota("reg.test", quota, retry_after, 30.0)


# -- RateLimits ----------------------------------------------------------------

def test_rate_limits_hold_each_registry_to_its_own_bucket_the_lowest_rate_winning():
    clock = FakeClock()
    limits = RateLimits(clock=clock, sleep=clock.sleep)
    limits.limit("a.test", 10)
    limits.limit("a.test", 2)  # a stricter limit for the same registry wins
    limits.limit("a.test", 50)  # a looser one does not loosen it
    limits.limit("b.test", None)  # no limit asked: none set
    for _attempt in range(3):
        limits.wait("a.test")
        limits.wait("b.test")
        limits.wait("c.test")
    assert clock.sleeps == [0.5, 1.0]  # only a.test waited, at 2 requests a second


def test_rate_limits_report_the_last_quota_of_each_registry():
    limits = RateLimits()
    assert limits.report() == {}
    limits.observe("docker.io", CaseInsensitiveDict({"ratelimit-limit": "100;w=21600", "ratelimit-remaining": "9;w=21600"}))
    limits.observe("docker.io", CaseInsensitiveDict({"ratelimit-limit": "100;w=21600", "ratelimit-remaining": "8;w=21600"}))
    limits.observe("quay.io", CaseInsensitiveDict({}))
    assert limits.report() == {"docker.io": {"limit": 100, "remaining": 8, "window": 21600}}


# -- through the transport -----------------------------------------------------

def test_transport_reports_quota_and_fails_a_spent_429_without_retrying():
    headers = {"ratelimit-limit": "100;w=21600", "ratelimit-remaining": "0;w=21600"}
    app = scripted(Reply(200, b"ok", {"ratelimit-limit": "100;w=21600", "ratelimit-remaining": "1;w=21600"}),
                   Reply(429, b'{"errors":[{"code":"TOOMANYREQUESTS"}]}', headers), Reply(200, b"never"))
    sleeps = []
    with FakeServer(app) as server:
        transport = Transport(retries=5, sleep=sleeps.append)
        assert transport.request("GET", server.url + "/v2/a/manifests/1", "docker.io").status_code == 200
        assert transport.rate_limits.report() == {"docker.io": {"limit": 100, "remaining": 1, "window": 21600}}
        with pytest.raises(RateLimitError, match="rate limit is used up"):
            transport.request("GET", server.url + "/v2/a/manifests/2", "docker.io")
        transport.close()
    assert len(server.requests) == 2  # no retry was spent on a quota that cannot come back in time
    assert sleeps == []
    assert transport.rate_limits.report()["docker.io"]["remaining"] == 0


def test_transport_retries_a_429_that_announces_no_quota():
    sleeps = []
    with FakeServer(scripted(Reply(429, b"slow down"), Reply(200, b"ok"))) as server:
        transport = Transport(retries=2, sleep=sleeps.append)
        assert transport.request("GET", server.url + "/v2/", "reg.test").status_code == 200
        transport.close()
    assert len(sleeps) == 1


def test_transport_spaces_requests_to_a_limited_registry():
    with FakeServer(lambda request, handler: Reply(200, b"ok")) as server:
        transport = Transport()
        transport.rate_limits.limit("reg.test", 10)
        started = time.monotonic()
        for _attempt in range(4):
            transport.request("GET", server.url + "/v2/", "reg.test").close()
        spent = time.monotonic() - started
        transport.close()
    assert spent >= 0.29  # four requests at 10 a second: three intervals of 0.1 s at least
