# -*- coding: utf-8 -*-
# Copyright: contributors to imagepusher.registry
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

import email.utils

import pytest

from ansible_collections.imagepusher.registry.plugins.module_utils import _retry
from ansible_collections.imagepusher.registry.plugins.module_utils._retry import (
    REFUSED_WAIT,
    RetryBudget,
    backoff_delay,
    parse_retry_after,
    should_retry_status,
)

NOW = 1700000000.0


# -- parse_retry_after -------------------------------------------------------

@pytest.mark.parametrize("value, expected", [
    ("0", 0.0),
    ("1", 1.0),
    ("120", 120.0),
    ("  7  ", 7.0),
    (email.utils.formatdate(NOW + 30, usegmt=True), 30.0),
    (email.utils.formatdate(NOW + 3600, usegmt=True), 3600.0),
    (email.utils.formatdate(NOW - 60, usegmt=True), 0.0),  # a date in the past: no wait
    ("soon", None),
    ("1.5", None),  # delta-seconds is an integer
    ("-5", None),
    ("Wed, 99 Foo 2015 07:28:00 GMT", None),
    ("", None),
    (None, None),
])
def test_parse_retry_after(value, expected):
    assert parse_retry_after(value, now=NOW) == expected


def test_parse_retry_after_http_date_uses_the_clock_when_now_is_not_given():
    import time
    delay = parse_retry_after(email.utils.formatdate(time.time() + 100, usegmt=True))
    assert 95 <= delay <= 100


# -- backoff_delay -----------------------------------------------------------

@pytest.mark.parametrize("attempt, expected", [(0, 0.5), (1, 1.0), (2, 2.0), (3, 4.0), (4, 8.0), (5, 16.0),
                                               (6, 30.0), (20, 30.0)])
def test_backoff_delay_grows_exponentially_up_to_the_cap(monkeypatch, attempt, expected):
    monkeypatch.setattr(_retry.random, "random", lambda: 1.0)  # jitter at its top: exactly base * 2^n
    assert backoff_delay(attempt, 0.5, 30.0) == expected


@pytest.mark.parametrize("attempt", range(8))
def test_backoff_delay_jitter_stays_between_half_and_full_delay(attempt):
    full = min(30.0, 0.5 * 2 ** attempt)
    for _sample in range(50):
        delay = backoff_delay(attempt, 0.5, 30.0)
        assert full / 2 <= delay <= full


def test_backoff_delay_jitter_bottom(monkeypatch):
    monkeypatch.setattr(_retry.random, "random", lambda: 0.0)
    assert backoff_delay(3, 0.5, 30.0) == 2.0


@pytest.mark.parametrize("retry_after, cap, expected", [
    (1.0, 30.0, 1.0),
    (0.0, 30.0, 0.0),
    (29.5, 30.0, 29.5),
    (3600.0, 30.0, 30.0),  # clamped: a hostile Retry-After cannot park us for an hour
    (-5.0, 30.0, 0.0),
    (10.0, 2.0, 2.0),
])
def test_backoff_delay_honours_retry_after_clamped_to_cap(retry_after, cap, expected):
    # whatever the attempt number: Retry-After replaces the exponential delay
    assert backoff_delay(7, 0.5, cap, retry_after=retry_after) == expected
    assert backoff_delay(0, 0.5, cap, retry_after=retry_after) == expected


# -- should_retry_status -----------------------------------------------------

@pytest.mark.parametrize("status, retry", [
    (408, True), (429, True), (500, True), (502, True), (503, True), (504, True),
    (200, False), (201, False), (202, False), (204, False), (206, False), (301, False), (307, False),
    (400, False), (401, False), (403, False), (404, False), (405, False), (409, False), (413, False),
    (416, False), (501, False),
])
def test_should_retry_status(status, retry):
    assert should_retry_status(status) is retry


# -- RetryBudget -------------------------------------------------------------

def budget(retries, **kwargs):
    sleeps, counted = [], []
    made = RetryBudget(retries, sleep=sleeps.append, on_retry=lambda: counted.append(1), **kwargs)
    return made, sleeps, counted


@pytest.mark.parametrize("retries", [0, 1, 3])
def test_budget_allows_exactly_its_retries_then_refuses(retries):
    made, sleeps, counted = budget(retries)
    assert [made.retry() for _attempt in range(retries + 2)] == [True] * retries + [False, False]
    assert made.spent == retries and made.remaining == 0
    assert len(sleeps) == retries and len(counted) == retries


def test_budget_backoff_grows_with_what_was_spent(monkeypatch):
    monkeypatch.setattr(_retry.random, "random", lambda: 1.0)
    made, sleeps, _counted = budget(4, base=0.5, cap=3.0)
    while made.retry():
        pass
    assert sleeps == [0.5, 1.0, 2.0, 3.0]


@pytest.mark.parametrize("retry_after, expected", [(2.0, 2.0), (3600.0, 30.0), (-1.0, 0.0), (0.0, 0.0)])
def test_budget_honours_retry_after_clamped_to_its_cap(retry_after, expected):
    made, sleeps, counted = budget(2)
    assert made.retry(retry_after) is True
    assert sleeps == [expected] and counted == [1]


def test_budget_refusing_neither_sleeps_nor_counts():
    made, sleeps, counted = budget(0)
    assert made.retry(5.0) is False
    assert sleeps == [] and counted == [] and made.spent == 0


def test_budget_count_reports_without_spending():
    made, sleeps, counted = budget(1)
    made.count()
    assert counted == [1] and sleeps == [] and made.remaining == 1
    assert made.retry() is True and made.retry() is False
    assert counted == [1, 1]


def test_budget_without_on_retry_and_a_negative_size():
    sleeps = []
    made = RetryBudget(-3, sleep=sleeps.append)
    assert made.remaining == 0 and made.retry() is False
    made.count()  # no hook: nothing to report to
    assert sleeps == []


def test_refused_connections_wait_a_few_seconds_in_all_whatever_retries_allows():
    sleeps = []
    budget = RetryBudget(20, base=0.5, cap=30.0, sleep=sleeps.append)
    while budget.retry_refused():
        pass
    assert abs(sum(sleeps) - REFUSED_WAIT) < 1e-9 and len(sleeps) < 20
    assert budget.retry() is True  # other failures still have the rest of the budget
