# -*- coding: utf-8 -*-
# Copyright: contributors to imagepusher.registry
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The role mirror_images with tags and mirror_images_shard: its Jinja, rendered by Ansible's own Templar.

The share a host picks is the documented sha1(source + " " + target) modulo the sorted play hosts;
every entry goes to exactly one host; the summary says `entry` (and `host` when sharded) only when
an entry has tags or the list is sharded. Against real registries: tests/integration/test_image_mirror_sync.py.
"""

import hashlib
from pathlib import Path

import pytest
import yaml
from ansible.parsing.dataloader import DataLoader
from ansible.template import Templar, trust_as_template


ROLE = Path(__file__).resolve().parents[2] / "roles" / "mirror_images"
HOSTS = ["web-2", "web-10", "web-1"]
LIST = [{"source": "src.example/team/app-%d:v1" % n, "target": "dst.example/team/app-%d" % n} for n in range(12)]


def trusted(value):
    return trust_as_template(value) if isinstance(value, str) else value


@pytest.fixture(scope="module")
def tasks():
    return {task["name"]: task for task in yaml.safe_load((ROLE / "tasks" / "main.yml").read_text(encoding="utf-8"))}


@pytest.fixture(scope="module")
def defaults():
    return yaml.safe_load((ROLE / "defaults" / "main.yml").read_text(encoding="utf-8"))


def render(task, expression, defaults, **variables):
    context = dict(defaults)
    context.update((name, trusted(value)) for name, value in task.get("vars", {}).items())
    context.update(variables)
    return Templar(loader=DataLoader(), variables=context).template(trusted(expression))


def share(tasks, defaults, host, entries=None, hosts=None):
    task = tasks["Pick this host's share of the list"]
    return render(task, task["ansible.builtin.set_fact"]["mirror_images_share"], defaults, mirror_images_shard=True,
                  mirror_images_list=LIST if entries is None else entries, ansible_play_hosts=hosts or HOSTS,
                  inventory_hostname=host)


def test_each_entry_goes_to_exactly_the_documented_host(tasks, defaults):
    shares = {host: share(tasks, defaults, host) for host in HOSTS}
    ordered = sorted(HOSTS)
    for number, entry in enumerate(LIST):
        digest = int(hashlib.sha1(("%s %s" % (entry["source"], entry["target"])).encode()).hexdigest(), 16)
        owners = [host for host in HOSTS if number in shares[host]]
        assert owners == [ordered[digest % len(HOSTS)]], (number, owners)
    assert all(shares.values()), shares  # twelve entries spread over three hosts
    assert shares == {host: share(tasks, defaults, host, hosts=list(reversed(HOSTS))) for host in HOSTS}


def test_one_host_takes_the_whole_list(tasks, defaults):
    assert share(tasks, defaults, "solo", hosts=["solo"]) == list(range(len(LIST)))
    assert share(tasks, defaults, "solo", entries=[], hosts=["solo"]) == []


def test_the_mirror_task_passes_this_hosts_share(tasks, defaults):
    task = tasks["Mirror the images from their sources to their targets, through the cache"]
    images = task["imagepusher.registry.image_mirror"]["images"]
    assert render(task, images, defaults, mirror_images_list=LIST, mirror_images_shard=True,
                  mirror_images_share=[1, 4]) == [LIST[1], LIST[4]]
    assert render(task, images, defaults, mirror_images_list=LIST[:2]) == LIST[:2]


def registered(entries):
    return {"changed": True, "images": [
        {"source": "s:%d" % n, "target": "t:%d" % n, "digest": "sha256:%d" % n, "cache_name": "s:%d" % n, "cached": True,
         "changed": True, "bytes_downloaded": 1, "bytes_uploaded": 1, "entry": entry} for n, entry in enumerate(entries)]}


def summary(tasks, defaults, **variables):
    task = tasks["Summarize what was mirrored"]
    return render(task, task["ansible.builtin.set_fact"]["mirror_images_results"], defaults, **variables)


def test_the_summary_says_entry_and_host_when_sharded(tasks, defaults):
    results = summary(tasks, defaults, mirror_images_list=LIST, mirror_images_shard=True, mirror_images_share=[3, 7],
                      mirror_images_mirrored=registered([0, 1, 1]), inventory_hostname="web-1")
    assert [(r["target"], r["entry"], r["host"]) for r in results] == [
        ("t:0", 3, "web-1"), ("t:1", 7, "web-1"), ("t:2", 7, "web-1")]
    assert all(r["pushed"] and r["pulled"] for r in results)


def test_the_summary_says_entry_with_tags_and_nothing_new_without(tasks, defaults):
    tagged = [LIST[0], dict(LIST[1], source="src.example/team/app", tags={"latest": 2})]
    results = summary(tasks, defaults, mirror_images_list=tagged, mirror_images_mirrored=registered([0, 1, 1]),
                      inventory_hostname="web-1")
    assert [(r["target"], r["entry"]) for r in results] == [("t:0", 0), ("t:1", 1), ("t:2", 1)]
    assert all("host" not in r for r in results)
    plain = summary(tasks, defaults, mirror_images_list=LIST[:2], mirror_images_mirrored=registered([0, 1]),
                    inventory_hostname="web-1")
    assert [sorted(r) for r in plain] == [sorted(["source", "target", "digest", "cache_name", "cached", "pulled", "pushed",
                                                  "bytes_downloaded", "bytes_uploaded"])] * 2
