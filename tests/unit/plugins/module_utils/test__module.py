# -*- coding: utf-8 -*-
# Copyright: contributors to imagepusher.registry
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

import errno
import os

import pytest

from ansible_collections.imagepusher.registry.plugins.module_utils import _manifest
from ansible_collections.imagepusher.registry.plugins.module_utils import _module
from ansible_collections.imagepusher.registry.plugins.module_utils import _transport
from ansible_collections.imagepusher.registry.plugins.module_utils._errors import (
    CacheError,
    ImagePusherError,
    InvalidOptionError,
    InvalidReferenceError,
    NotFoundError,
)
from ansible_collections.imagepusher.registry.plugins.module_utils._reference import ImageReference


class Exited(Exception):
    """What AnsibleModule.exit_json/fail_json do: leave the module (here, the test's call)."""


class FakeModule:
    """Just what _module uses of an AnsibleModule; records how the module ended."""

    def __init__(self, diff=False, check_mode=False, **params):
        self.params = dict(_defaults(), **params)
        self.check_mode = check_mode
        self._diff = diff
        self.failed = None
        self.exited = None

    def fail_json(self, **kwargs):
        self.failed = kwargs
        raise Exited()

    def exit_json(self, **kwargs):
        self.exited = kwargs
        raise Exited()


def _defaults():
    """The params Ansible would hand over for the shared specs, nothing given."""
    params = {}
    for name, spec in list(_module.registry_argument_spec().items()) + list(_module.cache_argument_spec().items()):
        params[name] = spec.get("default")
    return params


def failure(call, *args, **kwargs):
    """The fail_json arguments `call` ended with (it must end that way)."""
    with pytest.raises(Exited):
        call(*args, **kwargs)
    module = args[0]
    assert module.exited is None
    return module.failed


# -- argument specs ----------------------------------------------------------------------

def test_registry_argument_spec():
    spec = _module.registry_argument_spec()
    assert sorted(spec) == sorted(["username", "password", "auth_file", "validate_certs", "ca_path", "client_cert",
                                   "client_key", "plain_http", "timeout", "retries", "requests_per_second",
                                   "registries_conf"])
    assert spec["requests_per_second"] == dict(type="float")
    assert spec["password"]["no_log"] is True
    assert spec["client_key"]["no_log"] is False  # a path, not a secret
    assert spec["username"]["fallback"][1] == ["IMAGEPUSHER_USERNAME"]
    assert spec["password"]["fallback"][1] == ["IMAGEPUSHER_PASSWORD"]
    assert spec["validate_certs"] == dict(type="bool", default=True, aliases=["tls_verify"])
    assert (spec["timeout"]["default"], spec["retries"]["default"], spec["plain_http"]["default"]) == (60, 5, False)
    for name in ("auth_file", "ca_path", "client_cert", "client_key"):
        assert spec[name]["type"] == "path"


def test_argument_specs_are_fresh_each_call():
    first = _module.registry_argument_spec()
    first["timeout"]["default"] = 1
    assert _module.registry_argument_spec()["timeout"]["default"] == 60


def test_cache_argument_spec():
    assert _module.cache_argument_spec() == dict(cache_dir=dict(type="path"), concurrency=dict(type="int", default=4),
                                                 foreign_layers=dict(type="str", default="skip", choices=["skip", "fetch"]))


# -- requirements and ranges ---------------------------------------------------------------

def test_check_requirements_names_the_missing_library(monkeypatch):
    _module.check_requirements(FakeModule())  # both present in the test venv: nothing happens
    monkeypatch.setattr(_transport, "http_library_error", lambda: ("requests", "no requests here"))
    failed = failure(_module.check_requirements, FakeModule())
    assert "requests" in failed["msg"] and failed["exception"] == "no requests here"
    monkeypatch.setattr(_transport, "http_library_error", lambda: None)
    monkeypatch.setattr(_manifest, "HAS_JSONSCHEMA", False)
    assert "jsonschema" in failure(_module.check_requirements, FakeModule())["msg"]


def test_check_ranges_accepts_the_defaults_and_the_bounds():
    for params in ({}, dict(timeout=1, retries=0, concurrency=1), dict(retries=20, concurrency=32),
                   dict(username="u", password="p"), dict(client_cert="/c", client_key="/k")):
        module = FakeModule(**params)
        _module.check_ranges(module)
        assert module.failed is None


@pytest.mark.parametrize("params, message", [
    (dict(timeout=0), "timeout must be a positive number of seconds, got 0"),
    (dict(timeout=-3), "timeout must be a positive number of seconds, got -3"),
    (dict(retries=21), "retries must be between 0 and 20, got 21"),
    (dict(retries=-1), "retries must be between 0 and 20, got -1"),
    (dict(concurrency=0), "concurrency must be between 1 and 32, got 0"),
    (dict(concurrency=33), "concurrency must be between 1 and 32, got 33"),
    (dict(requests_per_second=0.0), "requests_per_second must be a positive number of requests, got 0.0"),
    (dict(source_requests_per_second=-2.0), "source_requests_per_second must be a positive number of requests, got -2.0"),
    (dict(client_key="/k"), "client_key is set but client_cert is not: mutual TLS needs the certificate too"),
    (dict(username="u"), "username is set but password is not (option password or env IMAGEPUSHER_PASSWORD)"),
    (dict(password="p"), "password is set but username is not (option username or env IMAGEPUSHER_USERNAME)"),
    (dict(source_username="u"), "source_username is set but source_password is not"),
    (dict(source_password="p"), "source_password is set but source_username is not"),
])
def test_check_ranges_refuses(params, message):
    assert failure(_module.check_ranges, FakeModule(**params)) == dict(msg=message)


def test_check_ranges_leaves_credential_pairs_to_the_module_when_asked():
    module = FakeModule(username="u", source_password="p")
    _module.check_ranges(module, credential_pairs=False)
    assert module.failed is None


def test_check_ranges_skips_options_a_module_does_not_have():
    module = FakeModule()
    module.params = dict(timeout=10)  # image_info: no concurrency, no retries given
    _module.check_ranges(module)
    assert module.failed is None


# -- references --------------------------------------------------------------------------

def test_parse_reference_returns_the_reference():
    assert _module.parse_reference("nginx:1.27") == ImageReference.parse("docker.io/library/nginx:1.27")


@pytest.mark.parametrize("what, prefix", [(None, "name: "), ("source", "source: "), ("images[2].source", "images[2].source: ")])
def test_parse_reference_prefixes_errors_with_the_option(what, prefix):
    with pytest.raises(InvalidReferenceError) as raised:
        if what is None:
            _module.parse_reference("Not A/Reference!")
        else:
            _module.parse_reference("Not A/Reference!", what=what)
    assert raised.value.message.startswith(prefix + "Invalid image reference 'Not A/Reference!'")
    assert raised.value.details == {"reference": "'Not A/Reference!'"}  # the details travel with it


def test_parse_target_resolves_with_the_source_name():
    calls = []

    def resolve(text, source_name):
        calls.append((text, source_name))
        return "resolved"
    assert _module.parse_target("reg/x", "docker.io/library/nginx:1", resolve) == "resolved"
    assert calls == [("reg/x", "docker.io/library/nginx:1")]


def test_parse_target_prefixes_errors_and_keeps_their_type():
    def resolve(text, source_name):
        raise NotFoundError("no such thing", status=404, code="NAME_UNKNOWN")
    with pytest.raises(NotFoundError) as raised:
        _module.parse_target("reg/x", "src", resolve)
    assert raised.value.message == "target: no such thing"
    assert (raised.value.status, raised.value.code) == (404, "NAME_UNKNOWN")


# -- clients ----------------------------------------------------------------------------

def test_make_transport_takes_the_options():
    transport = _module.make_transport(FakeModule(timeout=7, retries=2, concurrency=8))
    try:
        assert (transport.timeout, transport.retries) == (7, 2)
    finally:
        transport.close()


def test_make_client_uses_the_target_or_the_source_options():
    module = FakeModule(username="writer", password="w", plain_http=True, source_username="reader",
                        source_password="r", source_plain_http=False)
    reference = ImageReference.parse("registry.example.com/team/app:v1")
    transport = _module.make_transport(module)
    try:
        target = _module.make_client(module, reference, transport)
        source = _module.make_client(module, reference, transport, for_source=True)
    finally:
        transport.close()
    assert (target.registry, target.plain_http, target.auth.credentials.username) == ("registry.example.com", True, "writer")
    assert (source.plain_http, source.auth.credentials.username, source.auth.credentials.password) == (False, "reader", "r")


def test_client_for_refuses_a_missing_auth_file(tmp_path):
    module = FakeModule(auth_file=str(tmp_path / "missing.json"))
    with pytest.raises(ImagePusherError) as raised:
        _module.client_for(module, ImageReference.parse("registry.example.com/a:v1"), None, None, None, False)
    assert str(tmp_path / "missing.json") in raised.value.message


# -- cache --------------------------------------------------------------------------------

@pytest.mark.parametrize("value", ["", "   "])
def test_make_cache_refuses_an_empty_cache_dir(value):
    with pytest.raises(CacheError) as raised:
        _module.make_cache(FakeModule(cache_dir=value))
    assert raised.value.message == "cache_dir is empty: give a directory, or leave it out for the default cache"


def test_make_cache_refuses_a_file(tmp_path):
    path = tmp_path / "a-file"
    path.write_text("x")
    with pytest.raises(CacheError) as raised:
        _module.make_cache(FakeModule(cache_dir=str(path)))
    assert raised.value.message == "cache_dir %s exists but is not a directory" % path
    assert raised.value.details == {"path": str(path)}


def test_make_cache_opens_without_creating(tmp_path):
    cache = _module.make_cache(FakeModule(cache_dir=str(tmp_path / "c")))
    assert cache.root == str(tmp_path / "c")
    assert not os.path.exists(cache.root)


def test_make_cache_defaults_to_the_user_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert _module.make_cache(FakeModule()).root == str(tmp_path / "xdg" / "imagepusher")


# -- settle_options and run ----------------------------------------------------------------

def test_settle_options_returns_what_settle_returns():
    module = FakeModule(cache_dir="/x")
    assert _module.settle_options(module, lambda params: params["cache_dir"]) == "/x"
    assert module.failed is None


def test_settle_options_fails_an_option_error_with_its_message_alone():
    def settle(params):
        raise InvalidOptionError("images[0]: half a pair", where="images[0]")
    assert failure(_module.settle_options, FakeModule(), settle) == dict(msg="images[0]: half a pair")


def test_settle_options_fails_any_other_error_with_its_name():
    def settle(params):
        raise InvalidReferenceError("images[1].target: bad", reference="'x'")
    assert failure(_module.settle_options, FakeModule(), settle) == dict(msg="images[1].target: bad",
                                                                         error="InvalidReferenceError")


def test_settle_options_lets_other_exceptions_through():
    def settle(params):
        raise KeyError("images")
    with pytest.raises(KeyError):
        _module.settle_options(FakeModule(), settle)


def test_run_exits_with_the_result_and_drops_diff_without_diff_mode():
    module = FakeModule()
    with pytest.raises(Exited):
        _module.run(module, lambda: {"changed": True, "digest": "sha256:x", "diff": {"before": {}, "after": {}}})
    assert module.exited == {"changed": True, "digest": "sha256:x"} and module.failed is None


def test_run_keeps_diff_in_diff_mode():
    module = FakeModule(diff=True)
    with pytest.raises(Exited):
        _module.run(module, lambda: {"changed": False, "diff": {"before": {"a": 1}, "after": {"a": 1}}})
    assert module.exited == {"changed": False, "diff": {"before": {"a": 1}, "after": {"a": 1}}}


def test_run_without_a_diff_in_diff_mode_adds_none():
    module = FakeModule(diff=True)
    with pytest.raises(Exited):
        _module.run(module, lambda: {"changed": False})
    assert module.exited == {"changed": False}


def test_run_turns_a_typed_error_into_fail_json():
    def operation():
        raise CacheError("cache_dir /c is broken", path="/c", digest=None, status=3)
    module = FakeModule(diff=True)
    failed = failure(_module.run, module, operation)
    # path is renamed (Ansible would stat a result's "path"); None details are left out
    assert failed == {"msg": "cache_dir /c is broken", "error": "CacheError", "cache_path": "/c", "status": 3}


def test_run_reports_a_registry_error_with_its_status_and_code():
    def operation():
        raise NotFoundError("manifest unknown", status=404, code="MANIFEST_UNKNOWN", registry="reg")
    failed = failure(_module.run, FakeModule(), operation)
    assert failed == {"msg": "manifest unknown", "error": "NotFoundError", "status": 404, "code": "MANIFEST_UNKNOWN",
                      "registry": "reg"}


def _announcing(module, registry, remaining):
    """A transport of `module` that heard `registry` announce a quota."""
    transport = _module.make_transport(module)
    transport.rate_limits.observe(registry, {"RateLimit-Limit": "100;w=21600", "RateLimit-Remaining": "%d" % remaining})
    return transport


def test_run_reports_announced_quotas_with_the_result():
    module = FakeModule()

    def operation():
        _announcing(module, "docker.io", 76)
        _module.make_transport(module)  # a transport that heard nothing adds nothing
        return {"changed": False}
    failure_free_run(module, operation)
    assert module.exited == {"changed": False, "rate_limits": {"docker.io": {"limit": 100, "remaining": 76, "window": 21600}}}


def test_run_reports_announced_quotas_with_a_failure():
    module = FakeModule()

    def operation():
        _announcing(module, "docker.io", 0)
        raise NotFoundError("manifest unknown", status=404, registry="docker.io")
    failed = failure(_module.run, module, operation)
    assert failed["rate_limits"] == {"docker.io": {"limit": 100, "remaining": 0, "window": 21600}}


def test_run_without_announced_quotas_adds_no_key():
    module = FakeModule()
    failure_free_run(module, lambda: {"changed": True})
    assert module.exited == {"changed": True}


def failure_free_run(module, operation):
    with pytest.raises(Exited):
        _module.run(module, operation)
    assert module.failed is None


def test_client_for_holds_the_registry_to_requests_per_second_and_a_source_to_the_stricter_rate():
    module = FakeModule(requests_per_second=10.0, source_requests_per_second=2.0)
    transport = _module.make_transport(module)
    _module.client_for(module, ImageReference.parse("registry.example.com/a:v1"), transport, None, None, False)
    _module.client_for(module, ImageReference.parse("src.example.com/a:v1"), transport, None, None, False,
                       for_source=True)
    buckets = transport.rate_limits._buckets
    assert buckets["registry.example.com"].interval == pytest.approx(0.1)
    assert buckets["src.example.com"].interval == pytest.approx(0.5)
    transport.close()


def test_run_says_changed_when_the_error_says_something_was_written():
    done = {"blobs_uploaded": 1, "manifests_pushed": ["reg/app:v1"]}

    def operation():
        raise CacheError("the cache belongs to another user", path="/c", changed=True, done=done)
    failed = failure(_module.run, FakeModule(), operation)
    assert failed == {"msg": "the cache belongs to another user", "error": "CacheError", "cache_path": "/c",
                      "changed": True, "done": done}

    def unchanged():
        raise CacheError("nothing written", changed=False)
    assert failure(_module.run, FakeModule(), unchanged) == {"msg": "nothing written", "error": "CacheError"}


def test_run_lets_a_bug_through():
    def operation():
        raise ValueError("a bug, not a user error")
    module = FakeModule()
    with pytest.raises(ValueError):
        _module.run(module, operation)
    assert module.failed is None and module.exited is None


# -- registries.conf -----------------------------------------------------------------------

def _conf(tmp_path, text):
    path = tmp_path / "registries.conf"
    path.write_text(text)
    return str(path)


def test_client_for_follows_insecure_and_blocked(tmp_path):
    module = FakeModule(registries_conf=_conf(tmp_path, '[[registry]]\nlocation = "lab.example.com"\ninsecure = true\n'
                                                        '[[registry]]\nlocation = "bad.example.com"\nblocked = true\n'))
    transport = _module.make_transport(module)
    try:
        plain = _module.client_for(module, ImageReference.parse("registry.example.com/a:v1"), transport, None, None, False)
        lab = _module.client_for(module, ImageReference.parse("lab.example.com/a:v1"), transport, None, None, False)
        with pytest.raises(ImagePusherError, match="registry bad.example.com/a is blocked by .*registries.conf"):
            _module.client_for(module, ImageReference.parse("bad.example.com/a:v1"), transport, None, None, False)
    finally:
        transport.close()
    assert (plain.transport is transport, plain.loopback) == (True, False)
    # insecure: its own transport that verifies no certificate, and the https-then-http probe
    assert lab.transport is not transport and lab.transport.validate_certs is False and lab.loopback is True
    assert transport.validate_certs is True


def test_read_image_tries_the_mirrors_then_the_rewritten_location(tmp_path):
    module = FakeModule(registries_conf=_conf(tmp_path, '[[registry]]\nprefix = "src.example.com/team"\n'
                                                        'location = "real.example.com/team"\n'
                                                        '[[registry.mirror]]\nlocation = "mirror.example.com/cache"\n'))
    tried = []

    def attempt(client, location):
        tried.append((client.registry, str(location)))
        if client.registry == "mirror.example.com":
            raise NotFoundError("not on the mirror")
        return {"digest": "d"}

    result = _module.read_image(module, ImageReference.parse("src.example.com/team/app:v1"), None,
                                ("u", "p", False), attempt)
    assert tried == [("mirror.example.com", "mirror.example.com/cache/app:v1"),
                     ("real.example.com", "real.example.com/team/app:v1")]
    assert result == {"digest": "d", "source_location": "real.example.com/team/app"}


def test_a_malformed_registries_conf_fails_the_task_naming_file_and_line(tmp_path):
    module = FakeModule(registries_conf=_conf(tmp_path, '[[registry]]\nlocation = "a\n'))
    failed = failure(_module.run, module, lambda: _module.client_for(
        module, ImageReference.parse("a.example.com/a:v1"), None, None, None, False))
    assert str(tmp_path / "registries.conf") in failed["msg"] and "line 2" in failed["msg"]
    assert failed["error"] == "RegistriesConfError" and failed["registries_conf"] == str(tmp_path / "registries.conf")


def test_run_writes_the_blob_sources_left_in_memory_and_warns_when_it_cannot(tmp_path, monkeypatch):
    from ansible_collections.imagepusher.registry.plugins.module_utils import _blob_sources, _cache
    from ansible_collections.imagepusher.registry.plugins.module_utils._cache import Cache
    cache = Cache(str(tmp_path / "cache")).ensure()
    monkeypatch.setattr(_blob_sources, "FLUSH_EVERY", 3600.0)
    warnings = []
    module = FakeModule()
    module.warn = warnings.append

    def mirror():
        cache.record_sources(["sha256:" + "1" * 64], "reg.test/a")  # written at once (the first)
        cache.record_sources(["sha256:" + "2" * 64], "reg.test/b")  # left in memory
        return {"changed": True}
    with pytest.raises(Exited):
        _module.run(module, mirror)
    assert Cache(cache.root)._sources()._parsed() == {"sha256:" + "1" * 64: ["reg.test/a"], "sha256:" + "2" * 64: ["reg.test/b"]}
    assert warnings == []

    def full(path, data, root=None):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    def mirror_then_full():
        cache.record_sources(["sha256:" + "3" * 64], "reg.test/c")
        monkeypatch.setattr(_cache, "atomic_write", full)
        return {"changed": True}
    module = FakeModule()
    module.warn = warnings.append
    with pytest.raises(Exited):
        _module.run(module, mirror_then_full)
    assert module.exited == {"changed": True}  # the copy itself succeeded: only a warning
    assert len(warnings) == 1 and warnings[0].startswith(
        "the cache did not record which repositories hold the blobs (cache is out of disk space while recording blob "
        "sources")
    assert warnings[0].endswith("): a later push may upload a blob it could have mounted")
