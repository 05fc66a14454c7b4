# -*- coding: utf-8 -*-
# Copyright: contributors to imagepusher.registry
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

import errno
import json
import os
import subprocess
import sys
import textwrap

import pytest

from ansible_collections.imagepusher.registry.plugins.module_utils import _blob_sources
from ansible_collections.imagepusher.registry.plugins.module_utils import _cache
from ansible_collections.imagepusher.registry.plugins.module_utils._cache import Cache
from ansible_collections.imagepusher.registry.plugins.module_utils._digest import of_bytes
from ansible_collections.imagepusher.registry.plugins.module_utils._errors import CacheError

D1, D2, D3 = of_bytes(b"1"), of_bytes(b"2"), of_bytes(b"3")


@pytest.fixture
def cache(tmp_path):
    return Cache(str(tmp_path / "cache")).ensure()


def on_disk(cache):
    path = os.path.join(cache.root, ".imagepusher", "sources.json")
    return json.loads(open(path).read()) if os.path.exists(path) else None


def test_the_first_record_is_written_at_once_later_ones_within_a_second_at_the_end(cache):
    cache.record_sources([D1], "reg.test/team/app")
    assert on_disk(cache) == {D1: ["reg.test/team/app"]}  # at once: a cache that cannot take it says so early
    cache.record_sources([D1, D2], "reg.test/team/other")
    assert on_disk(cache) == {D1: ["reg.test/team/app"]}  # kept in memory for now...
    assert cache.sources(D1) == ["reg.test/team/app", "reg.test/team/other"]  # ...and read with the file
    assert Cache(cache.root).sources(D2) == ["reg.test/team/other"]  # by every Cache of the process
    _blob_sources.flush_all()  # the end of the run (_module.run)
    assert on_disk(cache) == {D1: ["reg.test/team/app", "reg.test/team/other"], D2: ["reg.test/team/other"]}


def test_a_record_after_the_interval_is_written_with_what_waited(cache, monkeypatch):
    monkeypatch.setattr(_blob_sources, "FLUSH_EVERY", 3600.0)
    cache.record_sources([D1], "reg.test/a")
    cache.record_sources([D2], "reg.test/b")
    monkeypatch.setattr(_blob_sources, "FLUSH_EVERY", 0.0)
    cache.record_sources([D3], "reg.test/c")
    assert on_disk(cache) == {D1: ["reg.test/a"], D2: ["reg.test/b"], D3: ["reg.test/c"]}


def test_records_merge_into_what_another_process_wrote_meanwhile(cache, monkeypatch):
    monkeypatch.setattr(_blob_sources, "FLUSH_EVERY", 3600.0)
    cache.record_sources([D1], "reg.test/a")
    cache.record_sources([D2], "reg.test/b")  # waits in memory
    path = os.path.join(cache.root, ".imagepusher", "sources.json")
    _cache.atomic_write(path, json.dumps({D1: ["reg.test/a", "reg.test/x"], D3: ["reg.test/y"]}).encode())
    assert cache.sources(D1) == ["reg.test/a", "reg.test/x"]  # another file now: read again
    _blob_sources.flush_all()
    assert on_disk(cache) == {D1: ["reg.test/a", "reg.test/x"], D2: ["reg.test/b"], D3: ["reg.test/y"]}


def test_the_file_is_parsed_again_only_when_it_is_another_file(cache, monkeypatch):
    cache.record_sources([D1], "reg.test/a")
    parses = []
    real = _blob_sources.json.loads
    monkeypatch.setattr(_blob_sources.json, "loads", lambda raw: parses.append(1) or real(raw))
    for _attempt in range(5):
        assert cache.sources(D1) == ["reg.test/a"]
    assert len(parses) == 1
    path = os.path.join(cache.root, ".imagepusher", "sources.json")
    _cache.atomic_write(path, json.dumps({D1: ["reg.test/b"]}).encode())  # same size, another inode
    assert cache.sources(D1) == ["reg.test/b"]
    assert len(parses) == 2


def test_a_failed_write_keeps_the_records_for_the_next_one(cache, monkeypatch):
    real = _cache.atomic_write
    calls = []

    def full_once(path, data, root=None):
        calls.append(path)
        if len(calls) == 1:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real(path, data, root)
    monkeypatch.setattr(_cache, "atomic_write", full_once)
    with pytest.raises(CacheError) as info:
        cache.record_sources([D1], "reg.test/a")
    assert info.value.message.startswith("cache is out of disk space while recording blob sources")
    assert cache.sources(D1) == ["reg.test/a"]  # still known to this process
    _blob_sources.flush_all()
    assert on_disk(cache) == {D1: ["reg.test/a"]}


def test_a_planted_link_is_never_read_and_is_replaced_by_the_next_write(cache, tmp_path):
    outside = tmp_path / "outside.json"
    outside.write_text(json.dumps({D1: ["evil.test/x"]}))
    os.symlink(str(outside), os.path.join(cache.root, ".imagepusher", "sources.json"))
    assert cache.sources(D1) == []
    cache.record_sources([D1], "reg.test/a")
    assert on_disk(cache) == {D1: ["reg.test/a"]}
    assert not os.path.islink(os.path.join(cache.root, ".imagepusher", "sources.json"))
    assert json.loads(outside.read_text()) == {D1: ["evil.test/x"]}


def test_what_is_left_is_written_when_the_interpreter_exits(cache):
    """A library caller that never calls flush_all loses nothing at a normal exit."""
    code = textwrap.dedent("""
        import sys
        from ansible_collections.imagepusher.registry.plugins.module_utils._cache import Cache
        cache = Cache(sys.argv[1])
        cache.record_sources(["%s"], "reg.test/first")
        cache.record_sources(["%s"], "reg.test/second")
    """ % (D1, D2))
    subprocess.run([sys.executable, "-c", code, cache.root], check=True, env=dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path)))
    assert on_disk(cache) == {D1: ["reg.test/first"], D2: ["reg.test/second"]}
