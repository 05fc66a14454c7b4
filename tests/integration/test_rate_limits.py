"""Rate limits against real registries: our own requests_per_second, and a quota a registry announces.

A fault proxy in front of each registry records every request with its start time (the
oracle for "no second saw more than N requests") and, in front of the source, adds the
headers Docker Hub sends with every manifest answer (`ratelimit-limit: 100;w=21600`,
`ratelimit-remaining: 76;w=21600`), or answers 429 with the quota used up.

Run: .venv/bin/python -m pytest tests/integration/test_rate_limits.py -q
"""

from __future__ import annotations

import pytest

from tests.support import images, seed
from tests.support.checks import failed, ok, play, raw_manifest, task
from tests.support.fault_proxy import FaultProxy, headers, status
from tests.support.registry import Registry

pytestmark = [pytest.mark.ansible]

MIRROR = "imagepusher.registry.image_mirror"
REPOS = ("quota/app", "quota/tool")
HUB_HEADERS = {"ratelimit-limit": "100;w=21600", "ratelimit-remaining": "76;w=21600"}
SOURCE_RATE, TARGET_RATE = 5, 20


@pytest.fixture(scope="module")
def source():
    with Registry() as reg:
        base = images.random_layer(0.2, seed=400)
        for number, repo in enumerate(REPOS):
            seed.push(reg.url, repo, images.build_image([base, images.random_layer(0.1, seed=401 + number)]), "v1")
        seed.push(reg.url, "quota/spent", images.build_image([base]), "v1")
        yield reg


def most_in_one_second(exchanges) -> int:
    """The largest number of requests that started within any one-second window."""
    starts = sorted(e.started for e in exchanges)
    return max((sum(1 for t in starts if s <= t < s + 1.0) for s in starts), default=0)


def mirror_task(name, src, dst, **keywords):
    args = {"images": [{"source": f"{src.host}/{repo}:v1", "target": f"{dst.host}/copy/{repo.split('/')[1]}:v1"}
                       for repo in REPOS],
            "requests_per_second": TARGET_RATE, "source_requests_per_second": SOURCE_RATE}
    return task(name, MIRROR, args, diff=True, **keywords)


def test_requests_per_second_holds_each_registry_and_quota_is_reported(ansible, source, tmp_path):
    with Registry() as target, FaultProxy(source.host) as src, FaultProxy(target.host) as dst:
        src.add(None, r"/manifests/", headers(HUB_HEADERS))
        run = ansible.run_playbook(play(
            mirror_task("check", src, dst, check_mode=True),
            mirror_task("mirror", src, dst),
            mirror_task("check again", src, dst, check_mode=True),
            mirror_task("mirror again", src, dst),
        ))
        check, real, check2, real2 = (ok(run, name) for name in ("check", "mirror", "check again", "mirror again"))
        assert check["changed"] and real["changed"]
        assert not check2["changed"] and not real2["changed"]
        for result in (check, real, check2, real2):
            assert result["rate_limits"] == {src.host: {"limit": 100, "remaining": 76, "window": 21600}}
        for repo in REPOS:  # the bytes the target serves are the source's
            name = repo.split("/")[1]
            assert raw_manifest(f"{target.host}/copy/{name}:v1") == raw_manifest(f"{source.host}/{repo}:v1")
        # Each registry held to its own rate: one request every 1/rate s, so at most rate + 1 in a second.
        assert len(src.log) > SOURCE_RATE + 1 and len(dst.log) > 10
        assert most_in_one_second(src.log) <= SOURCE_RATE + 1
        assert most_in_one_second(dst.log) <= TARGET_RATE + 1


def test_warm_run_reads_manifests_with_head_only(ansible, source):
    with Registry() as target, FaultProxy(source.host) as src:
        dst_args = [{"source": f"{src.host}/{repo}:v1", "target": f"{target.host}/warm/{repo.split('/')[1]}:v1"}
                    for repo in REPOS]
        ok(ansible.run_playbook(play(task("cold", MIRROR, {"images": dst_args}))), "cold")
        mark = src.mark()
        run = ansible.run_playbook(play(task("warm", MIRROR, {"images": dst_args, "requests_per_second": 50})))
        assert not ok(run, "warm")["changed"]
        manifest_requests = [e.method for e in src.exchanges(None, r"/manifests/", since=mark)]
        assert manifest_requests == ["HEAD"] * len(REPOS)
        assert not src.exchanges("GET", r"/blobs/", since=mark)


def test_a_spent_quota_fails_at_once_with_what_to_do(ansible, source, tmp_path):
    spent = {"ratelimit-limit": "100;w=21600", "ratelimit-remaining": "0;w=21600"}
    with Registry() as target, FaultProxy(source.host) as src:
        rule = src.add(None, r"/quota/spent/manifests/", status(429, extra=spent))
        run = ansible.run_playbook(play(task("spent", MIRROR, {
            "images": [{"source": f"{src.host}/quota/spent:v1", "target": f"{target.host}/copy/spent:v1"}],
            "retries": 5}, ignore_errors=True)))
        result = failed(run, "spent")
        assert result["error"] == "RateLimitError"
        assert f"registry {src.host} refused the request (429 Too Many Requests)" in result["msg"]
        assert "0 of 100 requests left in a 21600 s window" in result["msg"]
        assert result["rate_limits"] == {src.host: {"limit": 100, "remaining": 0, "window": 21600}}
        assert result["changed"] is False
        assert rule.hits == 1  # no retry spent on a quota that cannot come back in time
