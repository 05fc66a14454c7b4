# -*- coding: utf-8 -*-
# Copyright: contributors to imagepusher.registry
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

import json
import os

import pytest

from ansible_collections.imagepusher.registry.plugins.module_utils import _cache_index
from ansible_collections.imagepusher.registry.plugins.module_utils import _media_types
from ansible_collections.imagepusher.registry.plugins.module_utils._cache import Cache
from ansible_collections.imagepusher.registry.plugins.module_utils._digest import of_bytes
from ansible_collections.imagepusher.registry.plugins.module_utils._errors import CacheError

REF = _cache_index.REF_NAME


def entry(name, data=b"m", **annotations):
    annotations[REF] = name
    return {"mediaType": _media_types.OCI_MANIFEST, "digest": of_bytes(data), "size": len(data),
            "annotations": annotations}


def whole_dump(entries):
    """index.json as it was written before entries were encoded one by one: the bytes must stay the same."""
    index = {"schemaVersion": 2, "mediaType": _media_types.OCI_INDEX, "manifests": entries}
    return (json.dumps(index, sort_keys=True, separators=(",", ":")) + "\n").encode("utf-8")


@pytest.fixture
def cache(tmp_path):
    return Cache(str(tmp_path / "cache")).ensure()


def index_path(cache):
    return os.path.join(cache.root, "index.json")


@pytest.mark.parametrize("entries", [
    [],
    [entry("a")],
    [entry("reg.test/app:1", b"1", note="caf\u00e9 \u2603 \"quoted\""), entry("reg.test/app:2", b"2", z="1", a="2")],
    [{"digest": of_bytes(b"x"), "size": 1, "mediaType": "x", "platform": {"os": "linux", "architecture": "arm64"}}],
])
def test_the_bytes_are_those_of_the_whole_index_dumped_at_once(entries):
    assert _cache_index.dump(entries) == whole_dump(entries)


def test_with_entry_adds_sorted_replaces_and_says_when_nothing_changes():
    index = _cache_index.Index(_cache_index.dump([]), [])
    index = index.with_entry("b", entry("b"))
    index = index.with_entry("a", entry("a"))
    assert index.raw == whole_dump([entry("a"), entry("b")])
    assert index.with_entry("a", entry("a")) is None  # the same descriptor: no write
    replaced = index.with_entry("a", entry("a", b"other"))
    assert replaced.raw == whole_dump([entry("a", b"other"), entry("b")])
    assert replaced.with_entry("a", entry("a", b"other", extra="1")).raw == whole_dump(
        [entry("a", b"other", extra="1"), entry("b")])


def test_duplicate_names_written_by_hand_become_one():
    twice = [entry("a", b"1"), entry("a", b"2")]
    index = _cache_index.parse("/nowhere/index.json", whole_dump(twice))
    assert index.with_entry("a", entry("a", b"1")).raw == whole_dump([entry("a", b"1")])


def test_without_removes_or_says_there_was_nothing():
    index = _cache_index.parse("/nowhere/index.json", whole_dump([entry("a"), entry("b")]))
    assert index.without("c") is None
    assert index.without("a").raw == whole_dump([entry("b")])


def test_entries_and_find_give_copies():
    index = _cache_index.parse("/nowhere/copies/index.json", whole_dump([entry("a")]))
    index.entries()[0]["annotations"][REF] = "changed"
    index.find("a")["digest"] = "changed"
    assert index.entries() == [entry("a")]
    assert index.find("a") == entry("a")
    assert index.find("nothing") is None


def test_a_text_read_again_is_not_parsed_again_and_any_other_text_is(monkeypatch):
    path = "/nowhere/kept/index.json"
    raw = whole_dump([entry("a")])
    first = _cache_index.parse(path, raw)
    assert _cache_index.parse(path, bytes(bytearray(raw))) is first  # equal bytes: the kept one
    # Same size, other bytes (another process wrote it): parsed, never trusted by its size.
    other = whole_dump([entry("b")])
    assert len(other) == len(raw)
    assert _cache_index.parse(path, other).find("b") == entry("b")
    assert _cache_index.parse(path, other).find("a") is None


@pytest.mark.parametrize("raw", [b"{", b"[]", b'{"manifests": [1]}', b"\xff"])
def test_what_is_not_an_image_index_is_a_cache_error(raw):
    with pytest.raises(CacheError) as failed:
        _cache_index.parse("/nowhere/bad/index.json", raw)
    assert "/nowhere/bad/index.json" in str(failed.value)


def test_set_ref_sees_what_another_process_wrote_between_two_names(cache):
    cache.set_ref("a", {"mediaType": _media_types.OCI_MANIFEST, "digest": of_bytes(b"a"), "size": 1})
    # Another process names "b" meanwhile (the file is replaced, as atomic_write does).
    with open(index_path(cache)) as handle:
        document = json.load(handle)
    document["manifests"].append(entry("b"))
    with open(index_path(cache) + ".new", "w") as handle:
        json.dump(document, handle)
    os.rename(index_path(cache) + ".new", index_path(cache))
    cache.set_ref("c", {"mediaType": _media_types.OCI_MANIFEST, "digest": of_bytes(b"c"), "size": 1})
    names = [e["annotations"][REF] for e in cache.entries()]
    assert names == ["a", "b", "c"]
    assert Cache(cache.root).get_ref("b") == entry("b")


def test_the_file_written_is_the_text_kept_and_the_next_read_of_it_is_not_parsed(cache, monkeypatch):
    cache.set_ref("a", {"mediaType": _media_types.OCI_MANIFEST, "digest": of_bytes(b"a"), "size": 1})
    with open(index_path(cache), "rb") as handle:
        assert handle.read() == _cache_index._KEPT[index_path(cache)].raw

    def no_parse(*_args, **_kwargs):
        raise AssertionError("parsed again")
    monkeypatch.setattr(_cache_index.json, "loads", no_parse)
    assert cache.set_ref("a", {"mediaType": _media_types.OCI_MANIFEST, "digest": of_bytes(b"a"), "size": 1}) is False
