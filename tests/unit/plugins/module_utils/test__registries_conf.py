# -*- coding: utf-8 -*-
# Copyright: contributors to imagepusher.registry
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""_registries_conf: lookup order, parsing, prefix matching, rewriting, mirrors, insecure and blocked."""

import pytest

from ansible_collections.imagepusher.registry.plugins.module_utils import _registries_conf as rc
from ansible_collections.imagepusher.registry.plugins.module_utils._reference import ImageReference

DIGEST = "sha256:" + "ab" * 32


def conf_of(tmp_path, text, name="registries.conf"):
    path = tmp_path / name
    path.write_text(text)
    return rc.load(str(path))


def ref(text):
    return ImageReference.parse(text)


def names(sources):
    return [(str(s.reference), s.insecure, s.mirror) for s in sources]


def test_no_entry_reads_the_image_where_it_is(tmp_path):
    conf = conf_of(tmp_path, 'unqualified-search-registries = ["docker.io"]\n')
    assert names(conf.pull_sources(ref("quay.io/team/app:v1"))) == [("quay.io/team/app:v1", False, False)]
    assert conf.check_registry(ref("quay.io/team/app:v1")) is False


def test_prefix_is_rewritten_to_location_keeping_tag_and_digest(tmp_path):
    conf = conf_of(tmp_path, """
[[registry]]
prefix = "docker.io/library"
location = "127.0.0.1:5000/hub"
""")
    assert names(conf.pull_sources(ref("nginx:1.27"))) == [("127.0.0.1:5000/hub/nginx:1.27", False, False)]
    digest_ref = ref("docker.io/library/nginx@" + DIGEST)
    assert str(conf.pull_sources(digest_ref)[0].reference) == "127.0.0.1:5000/hub/nginx@" + DIGEST
    # the prefix matches at a path boundary only
    assert names(conf.pull_sources(ref("docker.io/libraryx/app:v1")))[0][0] == "docker.io/libraryx/app:v1"


def test_longest_prefix_wins_and_wildcards_match_subdomains(tmp_path):
    conf = conf_of(tmp_path, """
[[registry]]
location = "example.com"
insecure = true

[[registry]]
prefix = "example.com/team"
location = "mirror.test/team"

[[registry]]
prefix = "*.corp.test"
blocked = true
""")
    assert str(conf.pull_sources(ref("example.com/team/app:v1"))[-1].reference) == "mirror.test/team/app:v1"
    assert conf.pull_sources(ref("example.com/other/app:v1"))[-1].insecure is True
    with pytest.raises(rc.BlockedRegistryError, match=r"registry reg\.corp\.test/app is blocked by .*registries\.conf"):
        conf.check_registry(ref("reg.corp.test/app:v1"))
    with pytest.raises(rc.BlockedRegistryError):
        conf.pull_sources(ref("reg.corp.test/app:v1"))
    assert conf.check_registry(ref("corp.test.evil/app:v1")) is False


def test_mirrors_come_first_in_order_and_pull_from_mirror_selects_them(tmp_path):
    conf = conf_of(tmp_path, """
[[registry]]
prefix = "src.test"
location = "src.test"
insecure = true

[[registry.mirror]]
location = "m1.test/cache"
insecure = true

[[registry.mirror]]
location = "m2.test"
pull-from-mirror = "digest-only"

[[registry.mirror]]
location = "m3.test"
pull-from-mirror = "tag-only"
""")
    assert names(conf.pull_sources(ref("src.test/team/app:v1"))) == [
        ("m1.test/cache/team/app:v1", True, True), ("m3.test/team/app:v1", False, True),
        ("src.test/team/app:v1", True, False)]
    assert [s.reference.registry for s in conf.pull_sources(ref("src.test/team/app@" + DIGEST))] == [
        "m1.test", "m2.test", "src.test"]


def test_mirror_by_digest_only_skips_mirrors_for_tags(tmp_path):
    conf = conf_of(tmp_path, """
[[registry]]
location = "src.test"
mirror-by-digest-only = true
mirror = [{location = "m1.test"}]
""")
    assert len(conf.pull_sources(ref("src.test/app:v1"))) == 1
    assert len(conf.pull_sources(ref("src.test/app@" + DIGEST))) == 2


def test_v1_tables_mark_insecure_and_blocked(tmp_path):
    conf = conf_of(tmp_path, """
[registries.insecure]
registries = ["old.test"]
[registries.block]
registries = ["bad.test"]
""")
    assert conf.check_registry(ref("old.test/app:v1")) is True
    with pytest.raises(rc.BlockedRegistryError):
        conf.check_registry(ref("bad.test/app:v1"))


def test_malformed_file_names_the_file_and_the_line(tmp_path):
    with pytest.raises(rc.RegistriesConfError) as info:
        conf_of(tmp_path, '[[registry]]\nprefix = "a.test"\nlocation = \n')
    assert str(tmp_path / "registries.conf") in info.value.message
    assert "line 3" in info.value.message


@pytest.mark.parametrize("text, wanted", [
    ('[[registry]]\ninsecure = true\n', "neither prefix nor location"),
    ('[[registry]]\nlocation = "a.test"\ninsecure = "yes"\n', "insecure must be true or false"),
    ('[[registry]]\nlocation = "a.test"\n[[registry.mirror]]\ninsecure = true\n', "needs a location"),
    ('[[registry]]\nlocation = "a.test"\n[[registry.mirror]]\nlocation = "m.test"\npull-from-mirror = "x"\n',
     "pull-from-mirror must be"),
    ('[[registry]]\nprefix = "*.a.test"\nlocation = "b.test"\n', "wildcard prefix"),
    ('registry = "a.test"\n', "'registry' must be a list"),
])
def test_entries_that_mean_nothing_are_refused(tmp_path, text, wanted):
    with pytest.raises(rc.RegistriesConfError, match=wanted):
        conf_of(tmp_path, text)


def test_a_rewrite_to_an_invalid_reference_is_a_clear_error(tmp_path):
    conf = conf_of(tmp_path, '[[registry]]\nprefix = "a.test"\nlocation = "B A D"\n')
    with pytest.raises(rc.RegistriesConfError, match="not a valid reference"):
        conf.pull_sources(ref("a.test/app:v1"))


def test_missing_explicit_file_is_an_error(tmp_path):
    with pytest.raises(rc.RegistriesConfError, match="does not exist"):
        rc.load(str(tmp_path / "nope.conf"))


def test_lookup_order_env_then_user_then_system_plus_drop_ins(tmp_path, monkeypatch):
    home = tmp_path / "home"
    user = home / ".config" / "containers" / "registries.conf"
    env_file = tmp_path / "env.conf"
    env_file.write_text("")
    monkeypatch.setattr(rc, "SYSTEM_DROP_INS", str(tmp_path / "none.d"))
    monkeypatch.setattr(rc, "SYSTEM_FILE", str(tmp_path / "system.conf"))
    assert rc.find_files(environ={}, home=str(home)) == []
    (tmp_path / "system.conf").write_text("")
    assert rc.find_files(environ={}, home=str(home)) == [str(tmp_path / "system.conf")]
    user.parent.mkdir(parents=True)
    user.write_text("")
    assert rc.find_files(environ={}, home=str(home)) == [str(user)]
    assert rc.find_files(environ={"CONTAINERS_REGISTRIES_CONF": str(env_file)}, home=str(home)) == [str(env_file)]
    drop_ins = user.parent / "registries.conf.d"
    drop_ins.mkdir()
    (drop_ins / "b.conf").write_text("")
    (drop_ins / "a.conf").write_text("")
    (drop_ins / "ignored.txt").write_text("")
    # the user's drop-ins come after a main file that is not the user's, in name order
    assert rc.find_files(environ={"CONTAINERS_REGISTRIES_CONF": str(env_file)}, home=str(home)) == [
        str(env_file), str(drop_ins / "a.conf"), str(drop_ins / "b.conf")]
    assert rc.find_files(explicit="/x.conf", environ={}, home=str(home)) == ["/x.conf"]
    xdg = tmp_path / "xdg"
    assert rc.user_file({"XDG_CONFIG_HOME": str(xdg)}, str(home)) == str(xdg / "containers" / "registries.conf")


def test_a_later_drop_in_replaces_an_entry_with_the_same_prefix(tmp_path, monkeypatch):
    main = tmp_path / "main.conf"
    main.write_text('[[registry]]\nprefix = "a.test"\nlocation = "one.test"\n')
    drop_ins = tmp_path / "d"
    drop_ins.mkdir()
    (drop_ins / "10.conf").write_text('[[registry]]\nprefix = "a.test"\nlocation = "two.test"\n')
    monkeypatch.setattr(rc, "SYSTEM_DROP_INS", str(drop_ins))
    conf = rc.load(environ={"CONTAINERS_REGISTRIES_CONF": str(main)}, home=str(tmp_path / "home"))
    assert conf.files == [str(main), str(drop_ins / "10.conf")]
    assert str(conf.pull_sources(ref("a.test/app:v1"))[0].reference) == "two.test/app:v1"


def test_without_a_toml_reader_an_existing_file_is_a_warning(tmp_path, monkeypatch):
    path = tmp_path / "registries.conf"
    path.write_text('[[registry]]\nlocation = "a.test"\nblocked = true\n')
    monkeypatch.setattr(rc, "toml_reader", lambda: None)
    conf = rc.load(str(path))
    assert conf.registries == []
    assert len(conf.warnings) == 1 and str(path) in conf.warnings[0] and "tomli" in conf.warnings[0]
    monkeypatch.setattr(rc, "SYSTEM_DROP_INS", str(tmp_path / "none.d"))
    monkeypatch.setattr(rc, "SYSTEM_FILE", str(tmp_path / "none.conf"))
    assert rc.load(environ={}, home=str(tmp_path)).warnings == []  # no file, nothing to say
