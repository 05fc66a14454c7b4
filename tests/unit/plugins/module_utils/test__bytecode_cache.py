# -*- coding: utf-8 -*-
# Copyright: contributors to imagepusher.registry
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""_bytecode_cache: this collection's module_utils compiled once, not at every module run.

The import path is tested as Ansible runs a module: the real _bytecode_cache.py and a few
module_utils files of our own in a zip, imported by a fresh interpreter that has only that zip
on sys.path (this process already imported the package from the work tree). The cache itself
(what is trusted, what is written) is tested directly on a directory.
"""

import hashlib
import importlib.util
import json
import marshal
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from ansible_collections.imagepusher.registry.plugins.module_utils import _bytecode_cache
from ansible_collections.imagepusher.registry.plugins.module_utils._bytecode_cache import (
    BytecodeCache,
    default_directory,
    open_private_directory,
)

PACKAGE_DIR = "ansible_collections/imagepusher/registry/plugins/module_utils"
OURS = Path(_bytecode_cache.__file__)
SAMPLE = b'''
VALUE = 41


def answer():
    return VALUE + 1


def fail():
    raise RuntimeError("from the sample")
'''
USER = b'''
from ansible_collections.imagepusher.registry.plugins.module_utils._sample import answer
TWICE = answer() * 2
'''
# What a module does, then a report of how each module_utils file was loaded.
RUN = r'''
import builtins, json, sys, traceback
sys.path.insert(0, sys.argv[1])
compiled = []
real_compile = builtins.compile
def counting_compile(source, filename, *args, **kwargs):
    if str(filename).endswith(("/_sample.py", "/_user.py")):  # not the package inits, nor the cache itself
        compiled.append(str(filename).rpartition("/")[2])
    return real_compile(source, filename, *args, **kwargs)
builtins.compile = counting_compile
from ansible_collections.imagepusher.registry.plugins.module_utils import _bytecode_cache
finder = _bytecode_cache.install()
from ansible_collections.imagepusher.registry.plugins.module_utils import _user, _sample
try:
    _sample.fail()
except RuntimeError:
    where = traceback.extract_tb(sys.exc_info()[2])[-1].filename
print(json.dumps({"installed": finder is not None, "twice": _user.TWICE, "compiled": compiled,
                  "file": _sample.__file__, "traceback_file": where,
                  "source": _sample.__loader__.get_source(_sample.__name__)}))
'''


def make_zip(path, sample=SAMPLE):
    with zipfile.ZipFile(path, "w") as archive:
        for part in ("ansible_collections", "ansible_collections/imagepusher", "ansible_collections/imagepusher/registry",
                     "ansible_collections/imagepusher/registry/plugins", PACKAGE_DIR):
            archive.writestr(part + "/__init__.py", b"")
        archive.write(OURS, PACKAGE_DIR + "/_bytecode_cache.py")
        archive.writestr(PACKAGE_DIR + "/_sample.py", sample)
        archive.writestr(PACKAGE_DIR + "/_user.py", USER)
    return path


def run_module(zip_path, environ):
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), **environ}
    proc = subprocess.run([sys.executable, "-I", "-c", RUN, str(zip_path)], capture_output=True, text=True, env=env,
                          timeout=60, check=False)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


@pytest.fixture
def payload(tmp_path):
    return make_zip(tmp_path / "payload.zip")


@pytest.fixture
def cache_root(tmp_path):
    return tmp_path / "bytecode"


def entries(root):
    found = list(root.glob("*/*.pyc"))
    return sorted(found)


# -- through the import system, as a module run ------------------------------------------
def test_the_second_run_compiles_nothing_of_ours_and_behaves_the_same(payload, cache_root):
    env = {"IMAGEPUSHER_BYTECODE_CACHE": str(cache_root)}
    first = run_module(payload, env)
    assert first["installed"] and first["twice"] == 84
    assert sorted(first["compiled"]) == ["_sample.py", "_user.py"]
    assert len(entries(cache_root)) == 2

    second = run_module(payload, env)
    assert second["compiled"] == []
    assert second["twice"] == 84
    assert second["source"] == SAMPLE.decode()
    assert second["file"] == str(payload / PACKAGE_DIR / "_sample.py")


def test_a_traceback_names_this_runs_zip_not_the_one_that_filled_the_cache(tmp_path, cache_root):
    env = {"IMAGEPUSHER_BYTECODE_CACHE": str(cache_root)}
    run_module(make_zip(tmp_path / "first.zip"), env)
    later = make_zip(tmp_path / "later.zip")
    second = run_module(later, env)
    assert second["compiled"] == []
    assert second["traceback_file"] == str(later / PACKAGE_DIR / "_sample.py")


def test_a_changed_source_is_compiled_again_never_served_the_old_code(tmp_path, cache_root):
    env = {"IMAGEPUSHER_BYTECODE_CACHE": str(cache_root)}
    run_module(make_zip(tmp_path / "v1.zip"), env)
    changed = run_module(make_zip(tmp_path / "v2.zip", SAMPLE.replace(b"41", b"20")), env)
    assert changed["compiled"] == ["_sample.py"]
    assert changed["twice"] == 42


def test_the_default_directory_is_the_users_cache_created_private(payload, tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    result = run_module(payload, {"HOME": str(home)})
    assert result["installed"]
    directory = home / ".cache" / "imagepusher-bytecode" / sys.implementation.cache_tag
    assert len(list(directory.glob("*.pyc"))) == 2
    assert directory.stat().st_mode & 0o777 == 0o700
    assert all(entry.stat().st_mode & 0o777 == 0o600 for entry in directory.iterdir())


def test_off_leaves_the_import_system_alone_and_writes_nothing(payload, tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    for value in ("off", "false", "0"):
        result = run_module(payload, {"HOME": str(home), "IMAGEPUSHER_BYTECODE_CACHE": value})
        assert not result["installed"]
        assert sorted(set(result["compiled"])) == ["_sample.py", "_user.py"]  # zipimport's own way (twice in 3.11)
    assert not (home / ".cache").exists()


def test_a_directory_others_can_write_is_not_used(payload, cache_root):
    env = {"IMAGEPUSHER_BYTECODE_CACHE": str(cache_root)}
    run_module(payload, env)
    directory = entries(cache_root)[0].parent
    directory.chmod(0o777)
    result = run_module(payload, env)
    assert not result["installed"]
    assert sorted(set(result["compiled"])) == ["_sample.py", "_user.py"]


def test_a_directory_that_is_a_link_is_not_followed(payload, tmp_path):
    real = tmp_path / "elsewhere"
    real.mkdir(mode=0o700)
    cache_root = tmp_path / "bytecode"
    cache_root.mkdir()
    (cache_root / sys.implementation.cache_tag).symlink_to(real)
    result = run_module(payload, {"IMAGEPUSHER_BYTECODE_CACHE": str(cache_root)})
    assert not result["installed"]
    assert list(real.iterdir()) == []


def test_an_entry_tampered_with_is_compiled_again_and_replaced(payload, cache_root):
    env = {"IMAGEPUSHER_BYTECODE_CACHE": str(cache_root)}
    run_module(payload, env)
    for entry in entries(cache_root):
        data = bytearray(entry.read_bytes())
        data[-3] ^= 0xFF  # the code no longer matches the digest in the header
        entry.write_bytes(bytes(data))
    result = run_module(payload, env)
    assert sorted(result["compiled"]) == ["_sample.py", "_user.py"] and result["twice"] == 84
    assert run_module(payload, env)["compiled"] == []  # rewritten whole


def test_outside_a_zip_nothing_is_installed():
    before = list(sys.meta_path)
    assert _bytecode_cache.install({"IMAGEPUSHER_BYTECODE_CACHE": "/nonexistent"}) is None
    assert sys.meta_path == before


# -- the cache on a directory ------------------------------------------------------------
@pytest.fixture
def cache(tmp_path):
    fd = open_private_directory(str(tmp_path / "dir"))
    assert fd is not None
    yield BytecodeCache(fd)
    os.close(fd)


def stored(cache, text="X = 1"):
    code = compile(text, "sample.py", "exec")
    digest = hashlib.sha256(text.encode()).digest()
    cache.store(digest, code)
    return digest, code


def test_store_then_load_gives_equal_code(cache):
    digest, code = stored(cache)
    assert cache.load(digest) == code


def test_load_refuses_an_entry_of_another_owner(cache, tmp_path):
    if os.geteuid() != 0:
        pytest.skip("changing a file's owner needs root")
    digest, _code = stored(cache)
    os.chown(tmp_path / "dir" / cache.entry_name(digest), 65534, 65534)
    assert cache.load(digest) is None


def test_load_refuses_an_entry_others_can_write(cache, tmp_path):
    digest, _code = stored(cache)
    (tmp_path / "dir" / cache.entry_name(digest)).chmod(0o666)
    assert cache.load(digest) is None


def test_load_refuses_a_link_even_to_a_good_entry(cache, tmp_path):
    digest, _code = stored(cache)
    other = hashlib.sha256(b"other").digest()
    entry = tmp_path / "dir" / cache.entry_name(digest)
    good = tmp_path / "good.pyc"
    entry.rename(good)
    entry.symlink_to(good)
    assert cache.load(digest) is None
    (tmp_path / "dir" / cache.entry_name(other)).symlink_to(good)
    assert cache.load(other) is None


def test_load_refuses_an_entry_named_for_one_source_but_made_for_another(cache, tmp_path):
    digest, _code = stored(cache)
    other = hashlib.sha256(b"other source").digest()
    (tmp_path / "dir" / cache.entry_name(digest)).rename(tmp_path / "dir" / cache.entry_name(other))
    assert cache.load(other) is None


@pytest.mark.parametrize("cut", [0, 10, 40, 71, -1])
def test_load_refuses_a_torn_entry(cache, tmp_path, cut):
    digest, _code = stored(cache)
    entry = tmp_path / "dir" / cache.entry_name(digest)
    entry.write_bytes(entry.read_bytes()[:cut])
    assert cache.load(digest) is None


def test_load_refuses_another_pythons_bytecode(cache, tmp_path):
    digest, _code = stored(cache)
    entry = tmp_path / "dir" / cache.entry_name(digest)
    data = entry.read_bytes()
    magic = importlib.util.MAGIC_NUMBER
    entry.write_bytes(data[:4] + bytes([magic[0] ^ 1]) + magic[1:] + data[8:])
    assert cache.load(digest) is None


def test_an_entry_is_written_whole_under_its_name_only(cache, tmp_path):
    digest, code = stored(cache)
    names = os.listdir(tmp_path / "dir")
    assert names == [cache.entry_name(digest)]
    data = (tmp_path / "dir" / names[0]).read_bytes()
    assert marshal.loads(data[72:]) == code


def test_a_cache_it_cannot_write_only_costs_a_compile(cache, tmp_path):
    if os.geteuid() == 0:
        pytest.skip("root writes whatever the mode")
    (tmp_path / "dir").chmod(0o500)
    digest, _code = stored(cache)
    assert cache.load(digest) is None


def test_past_the_bound_the_oldest_half_goes(cache, tmp_path, monkeypatch):
    monkeypatch.setattr(_bytecode_cache, "_MAX_ENTRIES", 8)
    digests = []
    for number in range(9):
        digest, _code = stored(cache, "X = %d" % number)
        os.utime(tmp_path / "dir" / cache.entry_name(digest), (1000 + number, 1000 + number))
        digests.append(digest)
    # the 9th store went past 8: the four oldest are gone, the newest stay
    assert sorted(os.listdir(tmp_path / "dir")) == sorted(cache.entry_name(d) for d in digests[4:])


def test_a_private_directory_is_created_0700_and_others_are_refused(tmp_path):
    fd = open_private_directory(str(tmp_path / "a" / "b"))
    assert fd is not None
    os.close(fd)
    assert (tmp_path / "a" / "b").stat().st_mode & 0o777 == 0o700
    (tmp_path / "open").mkdir()
    (tmp_path / "open").chmod(0o755)
    assert open_private_directory(str(tmp_path / "open")) is None
    (tmp_path / "file").write_text("x")
    assert open_private_directory(str(tmp_path / "file")) is None


def test_where_the_cache_goes():
    tag = sys.implementation.cache_tag
    assert default_directory({"IMAGEPUSHER_BYTECODE_CACHE": "/srv/pyc"}) == "/srv/pyc/" + tag
    assert default_directory({"IMAGEPUSHER_BYTECODE_CACHE": "OFF"}) is None
    assert default_directory({"XDG_CACHE_HOME": "/x"}) == "/x/imagepusher-bytecode/" + tag
    assert default_directory({}) == os.path.join(os.path.expanduser("~"), ".cache", "imagepusher-bytecode", tag)
