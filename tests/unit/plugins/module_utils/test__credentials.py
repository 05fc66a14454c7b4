# -*- coding: utf-8 -*-
# Copyright: contributors to imagepusher.registry
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

import base64
import json
import os
import stat
import subprocess

import pytest

from ansible_collections.imagepusher.registry.plugins.module_utils import _credentials
from ansible_collections.imagepusher.registry.plugins.module_utils._credentials import (
    HUB_SERVER,
    CredentialsError,
    candidate_files,
    lookup_in_file,
    normalize_registry,
    read_auth_file,
    resolve,
    run_credential_helper,
)
from ansible_collections.imagepusher.registry.plugins.module_utils._errors import AuthenticationError

SECRET = "s3cr3t-PASSWORD-value"
TOKEN = "identity-TOKEN-value"
REG = "reg.example:5000"


def b64(text):
    return base64.b64encode(text.encode()).decode()


def write_json(path, document):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document) if not isinstance(document, str) else document)
    return path


def auth_entry(user, password=SECRET):
    return {"auth": b64("%s:%s" % (user, password))}


def assert_no_secret(*texts):
    for text in texts:
        assert SECRET not in text and TOKEN not in text
        assert b64("alice:" + SECRET) not in text


# -- names ---------------------------------------------------------------------------

@pytest.mark.parametrize("name, expected", [
    ("docker.io", "docker.io"),
    ("index.docker.io", "docker.io"),
    ("registry-1.docker.io", "docker.io"),
    ("registry.hub.docker.com", "docker.io"),
    ("https://index.docker.io/v1/", "docker.io"),
    ("Index.Docker.IO", "docker.io"),
    ("reg.example:5000", "reg.example:5000"),
    ("https://reg.example:5000/v1/", "reg.example:5000"),
    ("http://reg.example:5000", "reg.example:5000"),
    ("REG.example", "reg.example"),
    ("127.0.0.1:5000", "127.0.0.1:5000"),
    ("  reg.example  ", "reg.example"),
])
def test_normalize_registry(name, expected):
    assert normalize_registry(name) == expected


HUB_KEYS = ["docker.io", "index.docker.io", "registry-1.docker.io", "https://index.docker.io/v1/",
            "https://registry-1.docker.io/v2/", "registry.hub.docker.com"]


@pytest.mark.parametrize("key", HUB_KEYS)
@pytest.mark.parametrize("registry", ["docker.io", "index.docker.io", "registry-1.docker.io"])
def test_docker_hub_names_find_the_same_entry(tmp_path, key, registry):
    path = write_json(tmp_path / "config.json", {"auths": {key: auth_entry("hubuser")}})
    found = resolve(registry, "library/nginx", auth_file=str(path), environ={}, home=str(tmp_path / "nohome"))
    assert (found.username, found.password) == ("hubuser", SECRET)


@pytest.mark.parametrize("key, matches", [
    ("reg.example:5000", True),
    ("https://reg.example:5000/v1/", True),
    ("https://reg.example:5000", True),
    ("http://reg.example:5000/", True),
    ("https://reg.example:5000/some/path", True),  # with a scheme, a path is ignored
    ("reg.example:5000/team", True),  # a namespace entry covering team/app
    ("reg.example:5000/team/app", True),
    ("reg.example:5000/other", False),
    ("reg.example:5000/tea", False),  # not on a path-segment boundary
    ("reg.example", False),  # another port is another registry
    ("reg.example:5001", False),
    ("other.example:5000", False),
    ("docker.io", False),
])
def test_entry_keys_with_scheme_path_or_namespace(tmp_path, key, matches):
    path = write_json(tmp_path / "auth.json", {"auths": {key: auth_entry("alice")}})
    found = resolve(REG, "team/app", auth_file=str(path), environ={}, home=str(tmp_path / "nohome"))
    assert found.present is matches


def test_the_most_specific_namespace_wins_over_the_host(tmp_path):
    path = write_json(tmp_path / "auth.json", {"auths": {
        REG: auth_entry("host-user"),
        REG + "/team": auth_entry("team-user"),
        REG + "/team/sub": auth_entry("sub-user"),
    }})

    def who(repo):
        return resolve(REG, repo, auth_file=str(path), environ={}, home=str(tmp_path)).username
    assert who("team/sub/app") == "sub-user"
    assert who("team/app") == "team-user"
    assert who("other/app") == "host-user"
    assert who(None) == "host-user"


def test_an_exact_key_wins_over_an_alias(tmp_path):
    path = write_json(tmp_path / "auth.json", {"auths": {
        "https://index.docker.io/v1/": auth_entry("legacy"),
        "docker.io": auth_entry("exact"),
    }})
    assert resolve("docker.io", "library/x", auth_file=str(path), environ={}, home=str(tmp_path)).username == "exact"


# -- lookup order ----------------------------------------------------------------------

SOURCES = ("auth_file", "REGISTRY_AUTH_FILE", "XDG_RUNTIME_DIR", "XDG_CONFIG_HOME", "DOCKER_CONFIG", "HOME")


@pytest.fixture
def layout(tmp_path):
    """One auth file per location, each naming its own user; returns a builder."""
    paths = {
        "auth_file": tmp_path / "option" / "auth.json",
        "REGISTRY_AUTH_FILE": tmp_path / "env" / "registry-auth.json",
        "XDG_RUNTIME_DIR": tmp_path / "run" / "containers" / "auth.json",
        "XDG_CONFIG_HOME": tmp_path / "config" / "containers" / "auth.json",
        "DOCKER_CONFIG": tmp_path / "dockercfg" / "config.json",
        "HOME": tmp_path / "home" / ".docker" / "config.json",
    }

    def build(present, registry=REG):
        for name in present:
            write_json(paths[name], {"auths": {registry: auth_entry("user-from-" + name)}})
        environ = {
            "REGISTRY_AUTH_FILE": str(paths["REGISTRY_AUTH_FILE"]),
            "XDG_RUNTIME_DIR": str(tmp_path / "run"),
            "XDG_CONFIG_HOME": str(tmp_path / "config"),
            "DOCKER_CONFIG": str(tmp_path / "dockercfg"),
        }
        return dict(auth_file=str(paths["auth_file"]) if "auth_file" in present else None, environ=environ,
                    home=str(tmp_path / "home"))

    build.paths = paths
    return build


@pytest.mark.parametrize("present, winner", [
    (SOURCES, "auth_file"),
    (SOURCES[1:], "REGISTRY_AUTH_FILE"),
    (SOURCES[2:], "XDG_RUNTIME_DIR"),
    (SOURCES[3:], "XDG_CONFIG_HOME"),
    (SOURCES[4:], "DOCKER_CONFIG"),
    (SOURCES[5:], "HOME"),
    (("XDG_CONFIG_HOME", "HOME"), "XDG_CONFIG_HOME"),
    (("auth_file", "HOME"), "auth_file"),
    (("XDG_RUNTIME_DIR", "HOME"), "XDG_RUNTIME_DIR"),
    (("REGISTRY_AUTH_FILE", "DOCKER_CONFIG"), "REGISTRY_AUTH_FILE"),
    ((), None),
])
def test_lookup_order(layout, present, winner):
    found = resolve(REG, "team/app", **layout(present))
    if winner is None:
        assert not found.present and found.username is None and found.source is None
    else:
        assert (found.username, found.password) == ("user-from-" + winner, SECRET)
        assert found.source == "auth file %s" % layout.paths[winner]


def test_podmans_config_home_defaults_to_dot_config(tmp_path):
    """Without XDG_CONFIG_HOME, podman's fallback file is ~/.config/containers/auth.json."""
    home = tmp_path / "home"
    write_json(home / ".config" / "containers" / "auth.json", {"auths": {REG: auth_entry("user-from-dot-config")}})
    write_json(home / ".docker" / "config.json", {"auths": {REG: auth_entry("user-from-docker")}})
    found = resolve(REG, "team/app", environ={}, home=str(home))
    assert found.username == "user-from-dot-config"
    assert found.source == "auth file %s" % (home / ".config" / "containers" / "auth.json")


def test_options_win_over_every_file(layout):
    found = resolve(REG, "team/app", username="opt-user", password="opt-pass", **layout(SOURCES))
    assert (found.username, found.password) == ("opt-user", "opt-pass")
    assert found.source == "the username/password options"


def test_a_file_without_an_entry_for_the_registry_passes_on_to_the_next(layout, tmp_path):
    kwargs = layout(("HOME",))
    write_json(tmp_path / "run" / "containers" / "auth.json", {"auths": {"other.example": auth_entry("x")}})
    write_json(tmp_path / "dockercfg" / "config.json", {"auths": {REG: {}}})  # an entry without credentials
    assert resolve(REG, "team/app", **kwargs).username == "user-from-HOME"


def test_an_auth_file_option_that_does_not_exist_is_an_error(tmp_path):
    missing = tmp_path / "nope.json"
    with pytest.raises(CredentialsError) as info:
        resolve(REG, auth_file=str(missing), environ={}, home=str(tmp_path))
    assert info.value.message == "auth_file %s does not exist" % missing
    assert isinstance(info.value, AuthenticationError)


def test_default_locations_that_do_not_exist_are_skipped(tmp_path):
    environ = {"REGISTRY_AUTH_FILE": str(tmp_path / "a.json"), "XDG_RUNTIME_DIR": str(tmp_path / "run"),
               "DOCKER_CONFIG": str(tmp_path / "d")}
    assert not resolve(REG, environ=environ, home=str(tmp_path / "home")).present


def test_candidate_files_order_and_duplicates(tmp_path):
    environ = {"REGISTRY_AUTH_FILE": "/x/auth.json", "XDG_RUNTIME_DIR": "/run/user/0", "DOCKER_CONFIG": "/root/.docker"}
    assert candidate_files("/x/auth.json", environ, "/root") == [
        ("/x/auth.json", True),
        ("/run/user/0/containers/auth.json", False),
        ("/root/.config/containers/auth.json", False),
        ("/root/.docker/config.json", False),
    ]
    assert candidate_files(None, {}, "/home/u") == [("/home/u/.config/containers/auth.json", False),
                                                    ("/home/u/.docker/config.json", False)]
    assert candidate_files(None, {"XDG_CONFIG_HOME": "/cfg"}, "/home/u")[0] == ("/cfg/containers/auth.json", False)


# -- entry formats ----------------------------------------------------------------------

@pytest.mark.parametrize("entry, expected", [
    (auth_entry("alice"), ("alice", SECRET, None)),
    ({"auth": b64("alice:pass:with:colons")}, ("alice", "pass:with:colons", None)),
    ({"auth": " " + b64("alice:" + SECRET) + "\n"}, ("alice", SECRET, None)),
    ({"username": "alice", "password": SECRET}, ("alice", SECRET, None)),
    ({"auth": "", "username": "alice", "password": SECRET}, ("alice", SECRET, None)),
    ({"auth": b64("<token>:"), "identitytoken": TOKEN}, (None, None, TOKEN)),
    ({"auth": b64("00000000-0000-0000-0000-000000000000:"), "identitytoken": TOKEN},
     ("00000000-0000-0000-0000-000000000000", None, TOKEN)),
    ({"identitytoken": TOKEN}, (None, None, TOKEN)),
])
def test_auths_entry_formats(tmp_path, entry, expected):
    path = write_json(tmp_path / "auth.json", {"auths": {REG: entry}})
    found = resolve(REG, auth_file=str(path), environ={}, home=str(tmp_path))
    assert (found.username, found.password, found.identity_token) == expected
    assert_no_secret(repr(found))


@pytest.mark.parametrize("entry", [{}, {"auth": ""}, {"auth": b64("alice:")}, {"username": "alice"}, None,
                                   {"email": "a@example.com"}])
def test_entries_without_usable_credentials_are_skipped(tmp_path, entry):
    path = write_json(tmp_path / "auth.json", {"auths": {REG: entry}})
    home_cfg = write_json(tmp_path / "home" / ".docker" / "config.json", {"auths": {REG: auth_entry("fallback")}})
    assert home_cfg.exists()
    assert resolve(REG, auth_file=str(path), environ={}, home=str(tmp_path / "home")).username == "fallback"


# -- malformed files --------------------------------------------------------------------

@pytest.mark.parametrize("content, message", [
    ('{"auths": {"%s": {"auth": "%s"}' % (REG, SECRET), "is not valid JSON (Expecting ',' delimiter at line 1"),
    ("[1, 2]", "must hold a JSON object"),
    ('{"auths": ["%s"]}' % SECRET, ": auths must be an object"),
    ('{"credHelpers": "%s"}' % SECRET, ": credHelpers must be an object"),
    ('{"credsStore": 5}', ": credsStore must be a string"),
    ('{"auths": {"%s": "%s"}}' % (REG, SECRET), ": the entry for %s must be an object" % REG),
    ('{"auths": {"%s": {"auth": "%s!!"}}}' % (REG, SECRET), ": 'auth' of the entry for %s is not base64 of user:password"
     % REG),
    ('{"auths": {"%s": {"auth": "%s"}}}' % (REG, b64(SECRET)), ": 'auth' of the entry for %s is not base64 of "
     "user:password (no colon)" % REG),
    ('{"auths": {"%s": {"auth": 42}}}' % REG, ": 'auth' of the entry for %s must be a string" % REG),
    ('{"auths": {"%s": {"username": "a", "password": ["%s"]}}}' % (REG, SECRET),
     ": 'password' of the entry for %s must be a string" % REG),
    ('{"auths": {"%s": {"identitytoken": {"t": "%s"}}}}' % (REG, TOKEN),
     ": 'identitytoken' of the entry for %s must be a string" % REG),
])
def test_malformed_files_are_clear_errors_naming_the_file_never_the_secret(tmp_path, content, message):
    path = write_json(tmp_path / "auth.json", content)
    with pytest.raises(CredentialsError) as info:
        resolve(REG, auth_file=str(path), environ={}, home=str(tmp_path))
    text = info.value.message
    assert str(path) in text
    assert message in text, text
    assert_no_secret(text, repr(info.value.args), repr(info.value.details))


def test_a_malformed_default_file_is_an_error_too(tmp_path):
    path = write_json(tmp_path / "home" / ".docker" / "config.json", "{not json " + SECRET)
    with pytest.raises(CredentialsError) as info:
        resolve(REG, environ={}, home=str(tmp_path / "home"))
    assert info.value.message.startswith("auth file %s is not valid JSON (" % path)
    assert_no_secret(info.value.message)


def test_an_auth_file_that_is_a_directory(tmp_path):
    with pytest.raises(CredentialsError, match="is a directory, not a file"):
        resolve(REG, auth_file=str(tmp_path), environ={}, home=str(tmp_path / "h"))


def test_non_utf8_and_empty_files(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_bytes(b'{"auths": "\xff\xfe"}')
    with pytest.raises(CredentialsError, match="is not UTF-8 text"):
        read_auth_file(str(bad))
    empty = tmp_path / "empty.json"
    empty.write_text("  \n")
    assert read_auth_file(str(empty)) == {}


def test_unreadable_file(tmp_path, monkeypatch):
    path = write_json(tmp_path / "auth.json", {})

    def refuse(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(_credentials, "open", refuse, raising=False)
    with pytest.raises(CredentialsError) as info:
        read_auth_file(str(path))
    assert info.value.message == "cannot read auth file %s: Permission denied" % path


# -- credential helpers -------------------------------------------------------------------

HELPER = r"""#!/bin/sh
# A fake docker-credential helper: logs its arguments and stdin, answers from $ANSWERS/<server>.
log="%(log)s"
server=$(cat)
printf '%%s|%%s\n' "$*" "$server" >> "$log"
file="%(answers)s/$(printf '%%s' "$server" | tr '/:' '__')"
if [ -f "$file.fail" ]; then cat "$file.fail" >&2; exit 3; fi
if [ -f "$file" ]; then cat "$file"; exit 0; fi
echo "credentials not found in native keychain"
exit 1
"""


class FakeHelpers:
    def __init__(self, root):
        self.bin = root / "bin"
        self.answers = root / "answers"
        self.log = root / "helper.log"
        self.bin.mkdir(parents=True)
        self.answers.mkdir(parents=True)

    def install(self, name):
        script = self.bin / ("docker-credential-" + name)
        script.write_text(HELPER % {"log": self.log, "answers": self.answers})
        script.chmod(script.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
        return script

    def answer(self, server, document, fail=False):
        name = server.replace("/", "_").replace(":", "_")
        path = self.answers / (name + (".fail" if fail else ""))
        path.write_text(document if isinstance(document, str) else json.dumps(document))

    def calls(self):
        if not self.log.exists():
            return []
        return [tuple(line.split("|", 1)) for line in self.log.read_text().splitlines()]


@pytest.fixture
def helpers(tmp_path, monkeypatch):
    fake = FakeHelpers(tmp_path / "helpers")
    monkeypatch.setenv("PATH", "%s%s%s" % (fake.bin, os.pathsep, os.environ.get("PATH", "")))
    return fake


def test_cred_helpers_entry_runs_the_helper_with_get_and_the_registry_on_stdin(tmp_path, helpers):
    helpers.install("fake")
    helpers.answer(REG, {"ServerURL": REG, "Username": "helper-user", "Secret": SECRET})
    path = write_json(tmp_path / "config.json", {"credHelpers": {REG: "fake"},
                                                 "auths": {REG: auth_entry("file-user")}})
    found = resolve(REG, "team/app", auth_file=str(path), environ={}, home=str(tmp_path))
    assert (found.username, found.password) == ("helper-user", SECRET)  # credHelpers before auths
    assert found.source == "credential helper docker-credential-fake (credHelpers of %s)" % path
    assert helpers.calls() == [("get", REG)]
    assert_no_secret(repr(found), found.source)


def test_hub_helper_gets_the_legacy_server_name(tmp_path, helpers):
    helpers.install("hub")
    helpers.answer(HUB_SERVER, {"Username": "hubber", "Secret": SECRET})
    path = write_json(tmp_path / "config.json", {"credHelpers": {"index.docker.io": "hub"}})
    found = resolve("docker.io", "library/nginx", auth_file=str(path), environ={}, home=str(tmp_path))
    assert found.username == "hubber"
    assert helpers.calls() == [("get", HUB_SERVER)]


def test_a_token_username_means_the_secret_is_an_identity_token(tmp_path, helpers):
    helpers.install("fake")
    helpers.answer(REG, {"Username": "<token>", "Secret": TOKEN})
    path = write_json(tmp_path / "config.json", {"credHelpers": {REG: "fake"}})
    found = resolve(REG, auth_file=str(path), environ={}, home=str(tmp_path))
    assert (found.username, found.password, found.identity_token) == (None, None, TOKEN)
    assert found.present and not found.has_password
    assert found.who == "the identity token"


def test_creds_store_is_used_when_the_auths_entry_is_empty(tmp_path, helpers):
    helpers.install("store")
    helpers.answer(REG, {"Username": "stored", "Secret": SECRET})
    path = write_json(tmp_path / "config.json", {"credsStore": "store", "auths": {REG: {}}})
    found = resolve(REG, auth_file=str(path), environ={}, home=str(tmp_path))
    assert found.username == "stored"
    assert found.source == "credential helper docker-credential-store (credsStore of %s)" % path


def test_creds_store_is_asked_with_the_auths_key_spelling_too(tmp_path, helpers):
    helpers.install("store")
    helpers.answer("https://" + REG, {"Username": "stored", "Secret": SECRET})
    path = write_json(tmp_path / "config.json", {"credsStore": "store", "auths": {"https://" + REG: {}}})
    assert resolve(REG, auth_file=str(path), environ={}, home=str(tmp_path)).username == "stored"
    assert helpers.calls() == [("get", REG), ("get", "https://" + REG)]


def test_inline_credentials_win_over_creds_store(tmp_path, helpers):
    helpers.install("store")
    path = write_json(tmp_path / "config.json", {"credsStore": "store", "auths": {REG: auth_entry("inline")}})
    assert resolve(REG, auth_file=str(path), environ={}, home=str(tmp_path)).username == "inline"
    assert helpers.calls() == []


def test_a_helper_that_has_nothing_passes_on_to_the_next_file(tmp_path, helpers):
    helpers.install("empty")
    first = write_json(tmp_path / "first.json", {"credsStore": "empty"})
    write_json(tmp_path / "home" / ".docker" / "config.json", {"auths": {REG: auth_entry("later")}})
    found = resolve(REG, auth_file=str(first), environ={}, home=str(tmp_path / "home"))
    assert found.username == "later"
    assert helpers.calls() == [("get", REG)]


def test_a_helper_that_is_not_installed_is_a_clear_error(tmp_path, helpers):
    path = write_json(tmp_path / "config.json", {"credHelpers": {REG: "missing-one"}})
    with pytest.raises(CredentialsError) as info:
        resolve(REG, auth_file=str(path), environ={}, home=str(tmp_path))
    assert info.value.message == ("credential helper docker-credential-missing-one (credHelpers of %s) is not "
                                  "installed or not on PATH" % path)


@pytest.mark.parametrize("name", ["../evil", "a/b", ".hidden", ""])
def test_helper_names_cannot_be_paths(tmp_path, name):
    path = write_json(tmp_path / "config.json", {"credHelpers": {REG: name}})
    with pytest.raises(CredentialsError, match="names an invalid credential helper"):
        resolve(REG, auth_file=str(path), environ={}, home=str(tmp_path))


def test_a_failing_helper_is_an_error_with_its_exit_code_and_first_line(tmp_path, helpers):
    helpers.install("broken")
    helpers.answer(REG, "keychain is locked\nmore detail\n", fail=True)
    path = write_json(tmp_path / "config.json", {"credHelpers": {REG: "broken"}})
    with pytest.raises(CredentialsError) as info:
        resolve(REG, auth_file=str(path), environ={}, home=str(tmp_path))
    assert info.value.message == ("credential helper docker-credential-broken (credHelpers of %s) failed for %s "
                                  "with exit code 3: keychain is locked" % (path, REG))


@pytest.mark.parametrize("output", ["not json " + SECRET, json.dumps([SECRET]), json.dumps({"Secret": [SECRET]})])
def test_a_helper_answering_garbage_is_an_error_that_does_not_quote_it(tmp_path, helpers, output):
    helpers.install("odd")
    helpers.answer(REG, output)
    path = write_json(tmp_path / "config.json", {"credHelpers": {REG: "odd"}})
    with pytest.raises(CredentialsError) as info:
        resolve(REG, auth_file=str(path), environ={}, home=str(tmp_path))
    assert "answered for %s with something other than" % REG in info.value.message
    assert_no_secret(info.value.message)


def test_a_helper_secret_without_username_is_an_error(tmp_path, helpers):
    helpers.install("odd")
    helpers.answer(REG, {"Secret": SECRET})
    path = write_json(tmp_path / "config.json", {"credHelpers": {REG: "odd"}})
    with pytest.raises(CredentialsError, match="returned a secret without a Username") as info:
        resolve(REG, auth_file=str(path), environ={}, home=str(tmp_path))
    assert_no_secret(info.value.message)


def test_a_helper_that_hangs_times_out(tmp_path, helpers):
    helpers.install("slow")

    def runner(*args, **kwargs):
        assert kwargs["timeout"] == 7 and kwargs["check"] is False
        raise subprocess.TimeoutExpired(args[0], kwargs["timeout"])

    with pytest.raises(CredentialsError) as info:
        run_credential_helper("slow", REG, "credHelpers of x", runner=runner, timeout=7)
    assert info.value.message == ("credential helper docker-credential-slow (credHelpers of x) did not answer "
                                  "within 7 seconds")


def test_lookup_in_file_without_anything_for_the_registry(tmp_path):
    assert lookup_in_file("x", {"auths": {"other": auth_entry("x")}}, REG) is None
    assert lookup_in_file("x", {}, REG) is None
