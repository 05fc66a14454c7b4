# -*- coding: utf-8 -*-
# Copyright: contributors to imagepusher.registry
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""_connection_errors: real failures from requests (a name that does not resolve, a closed port, a dead proxy)."""

import re

import pytest
import requests

from ansible_collections.imagepusher.registry.plugins.module_utils import _connection_errors as ce
from ansible_collections.imagepusher.registry.plugins.module_utils._errors import TransportError
from ansible_collections.imagepusher.registry.plugins.module_utils._retry import REFUSED_WAIT, RetryBudget
from ansible_collections.imagepusher.registry.plugins.module_utils._transport import Transport

from tests.unit.plugins.module_utils.fake_http import closed_port

NO_NAME = "registry.invalid"  # .invalid never resolves (RFC 6761)


def failure(url, proxies=None):
    try:
        requests.get(url, timeout=3, proxies=proxies)
    except requests.exceptions.RequestException as exc:
        return exc
    raise AssertionError("no exception raised")


@pytest.fixture
def no_proxy_env(monkeypatch):
    for name in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy",
                 "NO_PROXY", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def test_kinds_of_real_failures(no_proxy_env):
    assert ce.kind(failure("https://%s/v2/" % NO_NAME)) == ce.DNS
    assert ce.kind(failure("http://127.0.0.1:%d/v2/" % closed_port())) == ce.REFUSED
    assert ce.kind(requests.exceptions.ConnectionError("reset by peer")) == ce.OTHER


@pytest.mark.parametrize("env, url, want", [
    ({"HTTPS_PROXY": "http://p:1"}, "https://r.test/v2/", ("http://p:1", "HTTPS_PROXY")),
    ({"HTTPS_PROXY": "http://up:1", "https_proxy": "http://low:1"}, "https://r.test/v2/", ("http://low:1", "https_proxy")),
    ({"ALL_PROXY": "http://all:1"}, "https://r.test/v2/", ("http://all:1", "ALL_PROXY")),
    ({"ALL_PROXY": "http://all:1", "HTTPS_PROXY": "http://p:1"}, "https://r.test/v2/", ("http://p:1", "HTTPS_PROXY")),
    ({"HTTP_PROXY": "http://p:1"}, "https://r.test/v2/", None),
    ({"HTTPS_PROXY": "http://p:1", "NO_PROXY": "r.test"}, "https://r.test:5000/v2/", None),
    ({"HTTPS_PROXY": "http://p:1", "no_proxy": ".test"}, "https://r.test/v2/", None),
    ({"HTTPS_PROXY": "http://p:1", "NO_PROXY": "other.test"}, "https://r.test/v2/", ("http://p:1", "HTTPS_PROXY")),
])
def test_proxy_setting_is_found_as_requests_finds_it(env, url, want):
    assert ce.proxy_setting(url, env) == want


def test_a_dead_proxy_is_named_with_its_variable_and_no_urllib3_repr(no_proxy_env):
    port = closed_port()
    no_proxy_env.setenv("HTTPS_PROXY", "http://user:secret@127.0.0.1:%d" % port)
    url = "https://r.test:5000/v2/"
    exc = failure(url)
    transport = Transport(retries=0)
    with pytest.raises(TransportError) as info:
        transport.request("GET", url, "r.test:5000")
    transport.close()
    message = info.value.message
    assert re.match(r"cannot reach registry r\.test:5000 after 1 attempt\(s\) over \d+\.\ds: the proxy "
                    r"http://127\.0\.0\.1:%d \(set by HTTPS_PROXY\) failed: " % port, message), message
    assert "Connection refused" in message and message.endswith("or exempt r.test in NO_PROXY")
    assert '"' not in message and "))" not in message and "secret" not in message
    assert info.value.details == {"registry": "r.test:5000", "proxy": "http://127.0.0.1:%d" % port,
                                  "proxy_source": "HTTPS_PROXY"}
    assert ce.through_proxy(exc) and ce.kind(exc) == ce.REFUSED


def test_a_name_that_does_not_resolve_fails_at_once_whatever_retries_allows(no_proxy_env):
    sleeps = []
    transport = Transport(retries=5, sleep=sleeps.append)
    with pytest.raises(TransportError) as info:
        transport.request("GET", "https://%s/v2/" % NO_NAME, NO_NAME)
    transport.close()
    assert info.value.message.startswith("cannot reach registry %s after 1 attempt(s) over " % NO_NAME)
    assert "the name does not resolve (not retried)" in info.value.message
    assert sleeps == [] and transport.retry_count == 0


def test_a_refused_connection_is_retried_for_a_few_seconds_at_most(no_proxy_env):
    sleeps = []
    transport = Transport(retries=20, sleep=sleeps.append)
    with pytest.raises(TransportError) as info:
        transport.request("GET", "http://127.0.0.1:%d/v2/" % closed_port(), "reg.test")
    transport.close()
    assert 2 <= len(sleeps) <= 6 and sum(sleeps) <= REFUSED_WAIT + 1e-9
    assert info.value.message.startswith("cannot reach registry reg.test after %d attempt(s) over " % (len(sleeps) + 1))
    assert "nothing accepts connections there" in info.value.message


def test_retry_decides_by_kind(no_proxy_env):
    budget = RetryBudget(5, sleep=lambda s: None)
    assert ce.retry(failure("https://%s/v2/" % NO_NAME), budget) is False and budget.spent == 0
    assert ce.retry(requests.exceptions.ConnectionError("reset"), budget) is True and budget.spent == 1
    assert ce.retry(failure("http://127.0.0.1:%d/" % closed_port()), budget) is True and budget.refused_waited > 0


def test_a_proxy_that_is_set_but_not_to_blame_is_still_mentioned():
    exc = requests.exceptions.ConnectionError("reset")
    error = ce.unreachable(exc, "https://r.test/v2/", "r.test", 3, 1.25, "reset",
                           environ={"ALL_PROXY": "http://p.test:3128"})
    assert error.message == ("cannot reach registry r.test after 3 attempt(s) over 1.2s: reset "
                             "(through the proxy http://p.test:3128, set by ALL_PROXY)")
