# -*- coding: utf-8 -*-
# Copyright: contributors to imagepusher.registry
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The one Ansible adapter: shared option specs, client construction, error -> fail_json.

Everything below this file is Ansible-free; everything above it (the modules) is docs
and a few lines of glue.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os

from ansible.module_utils.basic import env_fallback, missing_required_lib

from ansible_collections.imagepusher.registry.plugins.module_utils import _blob_sources
from ansible_collections.imagepusher.registry.plugins.module_utils import _cache
from ansible_collections.imagepusher.registry.plugins.module_utils import _credentials
from ansible_collections.imagepusher.registry.plugins.module_utils import _locations
from ansible_collections.imagepusher.registry.plugins.module_utils import _manifest
from ansible_collections.imagepusher.registry.plugins.module_utils import _progress
from ansible_collections.imagepusher.registry.plugins.module_utils import _registries_conf
from ansible_collections.imagepusher.registry.plugins.module_utils import _transport
from ansible_collections.imagepusher.registry.plugins.module_utils._clients import Clients
from ansible_collections.imagepusher.registry.plugins.module_utils._errors import CacheError, ImagePusherError, InvalidOptionError
from ansible_collections.imagepusher.registry.plugins.module_utils._reference import ImageReference
from ansible_collections.imagepusher.registry.plugins.module_utils._registry import RegistryClient

MAX_CONCURRENCY = 32


def registry_argument_spec():
    """Options for talking to one registry (auth, TLS, retries); see doc_fragments/registry.py."""
    return dict(
        username=dict(type="str", fallback=(env_fallback, ["IMAGEPUSHER_USERNAME"])),
        password=dict(type="str", no_log=True, fallback=(env_fallback, ["IMAGEPUSHER_PASSWORD"])),
        auth_file=dict(type="path", aliases=["authfile"]),
        validate_certs=dict(type="bool", default=True, aliases=["tls_verify"]),
        ca_path=dict(type="path"),
        client_cert=dict(type="path"),
        client_key=dict(type="path", no_log=False),
        plain_http=dict(type="bool", default=False),
        timeout=dict(type="int", default=60),
        retries=dict(type="int", default=5),
        requests_per_second=dict(type="float"),
        registries_conf=dict(type="path"),
    )


def cache_argument_spec():
    """Options for the on-host cache and transfers; see doc_fragments/cache.py."""
    return dict(
        cache_dir=dict(type="path"),
        concurrency=dict(type="int", default=4),
        foreign_layers=dict(type="str", default="skip", choices=["skip", "fetch"]),
    )


def check_requirements(module):
    missing = _transport.http_library_error()
    if missing:
        module.fail_json(msg=missing_required_lib(missing[0]), exception=str(missing[1]))
    if not _manifest.HAS_JSONSCHEMA:
        module.fail_json(msg=missing_required_lib("jsonschema"), exception=str(_manifest.JSONSCHEMA_IMPORT_ERROR))


def check_ranges(module, credential_pairs=True):
    """Numeric options whose type Ansible checks but whose range it cannot, and half credentials.

    credential_pairs=False: the module settles user and password per image (image_mirror).
    """
    params = module.params
    if params.get("timeout") is not None and params["timeout"] <= 0:
        module.fail_json(msg="timeout must be a positive number of seconds, got %d" % params["timeout"])
    if params.get("retries") is not None and not 0 <= params["retries"] <= 20:
        module.fail_json(msg="retries must be between 0 and 20, got %d" % params["retries"])
    for name in ("requests_per_second", "source_requests_per_second"):
        if params.get(name) is not None and not params[name] > 0:
            module.fail_json(msg="%s must be a positive number of requests, got %s" % (name, params[name]))
    if params.get("concurrency") is not None and not 1 <= params["concurrency"] <= MAX_CONCURRENCY:
        module.fail_json(msg="concurrency must be between 1 and %d, got %d" % (MAX_CONCURRENCY, params["concurrency"]))
    if credential_pairs:
        check_credential_pairs(module)
    if params.get("client_key") and not params.get("client_cert"):
        module.fail_json(msg="client_key is set but client_cert is not: mutual TLS needs the certificate too")


def check_credential_pairs(module):
    params = module.params
    if params.get("username") and not params.get("password"):
        module.fail_json(msg="username is set but password is not (option password or env IMAGEPUSHER_PASSWORD)")
    if params.get("password") and not params.get("username"):
        module.fail_json(msg="password is set but username is not (option username or env IMAGEPUSHER_USERNAME)")
    if params.get("source_username") and not params.get("source_password"):
        module.fail_json(msg="source_username is set but source_password is not")
    if params.get("source_password") and not params.get("source_username"):
        module.fail_json(msg="source_password is set but source_username is not")


def settle_options(module, settle):
    """settle(module.params), or fail the task before anything moves.

    A bad combination of options fails with its message alone, as Ansible's own option checks
    do; any other error (a bad reference) with its message and its name.
    """
    try:
        return settle(module.params)
    except InvalidOptionError as exc:
        module.fail_json(msg=exc.message)
    except ImagePusherError as exc:
        module.fail_json(msg=exc.message, error=type(exc).__name__)
    return None  # not reached: fail_json exits


def parse_reference(text, what="name"):
    try:
        return ImageReference.parse(text)
    except ImagePusherError as exc:
        raise type(exc)("%s: %s" % (what, exc.message), **exc.details)


def parse_target(text, source_name, resolve):
    """The target reference via `resolve(text, source_name)`, errors prefixed with the option name."""
    try:
        return resolve(text, source_name)
    except ImagePusherError as exc:
        raise type(exc)("target: %s" % exc.message, **exc.details)


def make_transport(module, insecure=False):
    """The run's Transport; insecure: one that verifies no certificate (registries.conf insecure = true)."""
    params = module.params
    transport = _transport.Transport(
        timeout=params["timeout"], retries=params["retries"], validate_certs=params["validate_certs"] and not insecure,
        ca_path=params.get("ca_path"), client_cert=params.get("client_cert"), client_key=params.get("client_key"),
        pool_size=max(8, (params.get("concurrency") or 4) * 2))
    # run() reports the quotas the registries announced through it, in the result or the failure.
    _transports(module).append(transport)
    return transport


def _transports(module):
    if not hasattr(module, "imagepusher_transports"):
        module.imagepusher_transports = []
    return module.imagepusher_transports


def rate_limits(module):
    """{registry: quota} announced to any transport of this run (empty when none was)."""
    report = {}
    for transport in _transports(module):
        report.update(transport.rate_limits.report())
    return report


def make_client(module, reference, transport, for_source=False):
    """A RegistryClient for the reference's registry, with credentials found as _credentials.resolve says.

    for_source: image_push's source registry, with source_username/source_password/source_plain_http.
    """
    return client_for(module, reference, transport, *login_for(module, for_source), for_source=for_source)


def login_for(module, for_source=False):
    """(username, password, plain_http) of the target side, or of image_push's source side."""
    params = module.params
    if for_source:
        return params.get("source_username"), params.get("source_password"), params.get("source_plain_http") or False
    return params.get("username"), params.get("password"), params["plain_http"]


def client_for(module, reference, transport, username, password, plain_http, for_source=False):
    """A RegistryClient with these credentials (else the auth files, as _credentials.resolve says).

    registries.conf applies: a blocked registry is refused, an insecure one is talked to without TLS checks.
    Its registry is held to requests_per_second, and a source registry also to
    source_requests_per_second where the module has it (the lower rate wins).
    """
    insecure = registries_conf(module).check_registry(reference)
    return _client(module, reference, transport, username, password, plain_http, insecure, for_source)


def _client(module, reference, transport, username, password, plain_http, insecure, for_source=False, clients=None):
    """clients: the task's shared clients (make_clients), used for a registry talked to as configured."""
    if insecure:
        # As containers/image: no certificate check, and plain HTTP when the registry does not speak TLS.
        transport = getattr(module, "_imagepusher_insecure_transport", None)
        if transport is None:
            transport = module._imagepusher_insecure_transport = make_transport(module, insecure=True)
    if module.params.get("requests_per_second") is not None:
        transport.rate_limits.limit(reference.registry, module.params["requests_per_second"])
    if for_source:
        limit_source(module, reference, transport)
    if clients is not None and not insecure:
        return clients(reference, username, password, plain_http)
    credentials = _credentials.resolve(reference.registry, reference.repository, username=username,
                                       password=password, auth_file=module.params.get("auth_file"))
    if not insecure:
        return RegistryClient.for_reference(reference, transport, credentials, plain_http=plain_http)
    return RegistryClient(reference.registry, transport, credentials, api_host=reference.api_host,
                          plain_http=plain_http, loopback=True)


def registries_conf(module):
    """The registries.conf in force for this run (read once; a missing TOML reader is a warning)."""
    conf = getattr(module, "_imagepusher_registries_conf", None)
    if conf is None:
        conf = _registries_conf.load(module.params.get("registries_conf"))
        for warning in conf.warnings:
            module.warn(warning)
        module._imagepusher_registries_conf = conf
    return conf


def read_image(module, reference, transport, login, attempt, served=None, clients=None):
    """attempt(client, location) at each location registries.conf gives `reference` (mirrors, then the
    registry, rewritten) until one serves it; the result names it in source_location.

    login: (username, password, plain_http), as login_for gives. served: see _locations.read_from.
    clients: the task's shared clients (make_clients), else a client per location.
    """
    def attempt_at(source):
        return attempt(_client(module, source.reference, transport, login[0], login[1], login[2], source.insecure,
                               for_source=True, clients=clients), source.reference)

    return _locations.read_from(registries_conf(module).pull_sources(reference), attempt_at, served)


def limit_source(module, reference, transport):
    """Hold the source registry of `reference` to source_requests_per_second (when set)."""
    if module.params.get("source_requests_per_second") is not None:
        transport.rate_limits.limit(reference.registry, module.params["source_requests_per_second"])


def limit_rates(module, images, transport):
    """Hold the registries of settled (source, target, entry) images to their rates, as client_for would."""
    for source, target, _entry in images:
        for reference in (source, target):
            transport.rate_limits.limit(reference.registry, module.params.get("requests_per_second"))
        limit_source(module, source, transport)


def make_clients(module, transport):
    """client(reference, username, password, plain_http): like client_for, but one client per registry and
    credentials for the whole task (a module over many images probes and authenticates once per registry).
    registries.conf applies as in client_for (an insecure registry gets a client of its own)."""
    shared = Clients(transport, auth_file=module.params.get("auth_file"))

    def client(reference, username, password, plain_http):
        insecure = registries_conf(module).check_registry(reference)
        return _client(module, reference, transport, username, password, plain_http, insecure, clients=shared)
    client.shared = shared
    return client


def make_cache(module):
    """The cache every module opens the same way (so the same checks hold for all of them)."""
    if module.params.get("cache_dir") is not None and not module.params["cache_dir"].strip():
        # An empty variable must not silently mean the default cache in the user's home.
        raise CacheError("cache_dir is empty: give a directory, or leave it out for the default cache")
    cache = _cache.Cache(module.params.get("cache_dir") or _cache.default_cache_dir())
    if os.path.exists(cache.root) and not os.path.isdir(cache.root):
        raise CacheError("cache_dir %s exists but is not a directory" % cache.root, path=cache.root)
    return cache


def run(module, operation):
    """Run operation() -> result dict; exit with it, or fail with the error's message."""
    _progress.restore_umask()  # an async run (progress) starts with async_wrapper's umask, not the task's
    try:
        result = operation()
    except ImagePusherError as exc:
        _write_blob_sources(module)
        # "path" in a result makes Ansible add that file's mode/owner/size: name it for what it is.
        details = dict(("cache_path" if k == "path" else k, v) for k, v in exc.details.items() if v is not None)
        details.update(_quota_report(module))
        # A failure after a registry or the cache was written says changed: true (and `done`, what was);
        # any other failure leaves `changed` out, which Ansible reads as false.
        if not details.get("changed"):
            details.pop("changed", None)
        module.fail_json(msg=exc.message, error=type(exc).__name__, **details)
    _write_blob_sources(module)
    if not module._diff:
        result.pop("diff", None)
    result.update(_quota_report(module))
    module.exit_json(**result)


def _write_blob_sources(module):
    """Write where blobs were seen (kept in memory during the run, see _blob_sources.py): only a hint for
    later mounts, so a cache that cannot take it now is a warning, not a failure of what was copied."""
    try:
        _blob_sources.flush_all()
    except ImagePusherError as exc:
        module.warn("the cache did not record which repositories hold the blobs (%s): a later push may upload "
                    "a blob it could have mounted" % exc.message)


def _quota_report(module):
    """{"rate_limits": ...} when a registry announced its quota, else nothing (the key stays out)."""
    report = rate_limits(module)
    return {"rate_limits": report} if report else {}
