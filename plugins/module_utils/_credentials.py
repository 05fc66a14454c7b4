# -*- coding: utf-8 -*-
# Copyright: contributors to imagepusher.registry
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Where the credentials for a registry come from.  Ansible-free.

First match wins:

1. the ``username``/``password`` options (the caller passes them; Ansible has already
   applied their environment fallbacks);
2. auth files, in this order, each only if it exists (except ``auth_file``, which must):
   the ``auth_file`` option, ``$REGISTRY_AUTH_FILE``, ``$XDG_RUNTIME_DIR/containers/auth.json``
   (podman, skopeo, buildah), ``$XDG_CONFIG_HOME/containers/auth.json`` (default
   ``~/.config``; podman's fallback), ``$DOCKER_CONFIG/config.json``, ``~/.docker/config.json``.

Within one file: a ``credHelpers`` entry for the registry, else an ``auths`` entry with
credentials (``auth`` = base64 "user:password", or ``username``/``password``, or an
``identitytoken``), else the ``credsStore`` helper.  A file without any of these for the
registry passes on to the next file.

Registry names are compared by host: ``https://host/v1/`` and ``host`` are the same entry,
and Docker Hub's names (docker.io, index.docker.io, registry-1.docker.io,
https://index.docker.io/v1/) are one.  A key with a path and no scheme
(``quay.io/team``) is podman's per-namespace entry: it applies to repositories under it,
and the longest such match wins over the host's entry.

Errors name the file and the entry, never a value from it.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import base64
import binascii
import json
import os
import shutil
import subprocess

from ansible_collections.imagepusher.registry.plugins.module_utils._auth import Credentials
from ansible_collections.imagepusher.registry.plugins.module_utils._errors import AuthenticationError
from ansible_collections.imagepusher.registry.plugins.module_utils._reference import DOCKER_HUB, DOCKER_HUB_AUTH_FILE_HOSTS

# The server name docker login uses for Docker Hub in auth files and credential helpers.
HUB_SERVER = "https://index.docker.io/v1/"
HELPER_PREFIX = "docker-credential-"
HELPER_TIMEOUT = 60
MAX_AUTH_FILE_BYTES = 4 * 1024 * 1024
# What docker-credential-helpers print (exit 1) when they hold nothing for a server.
_NOT_FOUND = "credentials not found"


class CredentialsError(AuthenticationError):
    """An auth file or credential helper that cannot be used; the message names it, never a secret."""


def normalize_registry(name):
    """'https://Index.Docker.io/v1/' -> 'docker.io'; 'http://reg:5000/x' -> 'reg:5000'."""
    host, _path = _split_key(name)
    return host


def _split_key(key):
    """(normalized host, namespace path or '') of an auths key; the path only counts without a scheme."""
    text = (key or "").strip()
    had_scheme = "://" in text
    if had_scheme:
        text = text.split("://", 1)[1]
    host, _sep, path = text.partition("/")
    host = host.lower()
    if host in DOCKER_HUB_AUTH_FILE_HOSTS:
        host = DOCKER_HUB
    path = path.strip("/")
    if had_scheme or path in ("v1", "v2"):
        path = ""  # https://host/v1/: docker's legacy spelling of the host itself
    return host, path


def helper_server(registry):
    """The server name to hand a credential helper (what docker login stored)."""
    host = normalize_registry(registry)
    return HUB_SERVER if host == DOCKER_HUB else host


def candidate_files(auth_file=None, environ=None, home=None):
    """[(path, required)] in lookup order; duplicates dropped, the first spelling kept."""
    env = os.environ if environ is None else environ
    home = home if home is not None else os.path.expanduser("~")
    paths = []
    if auth_file:
        paths.append((auth_file, True))
    if env.get("REGISTRY_AUTH_FILE"):
        paths.append((env["REGISTRY_AUTH_FILE"], False))
    if env.get("XDG_RUNTIME_DIR"):
        paths.append((os.path.join(env["XDG_RUNTIME_DIR"], "containers", "auth.json"), False))
    # podman's fallback when the runtime dir has none (containers-auth.json(5)): the config home.
    config_home = env.get("XDG_CONFIG_HOME") or (os.path.join(home, ".config") if home else None)
    if config_home:
        paths.append((os.path.join(config_home, "containers", "auth.json"), False))
    if env.get("DOCKER_CONFIG"):
        paths.append((os.path.join(env["DOCKER_CONFIG"], "config.json"), False))
    if home:
        paths.append((os.path.join(home, ".docker", "config.json"), False))
    seen = set()
    result = []
    for path, required in paths:
        key = os.path.abspath(os.path.expanduser(path))
        if key in seen:
            continue
        seen.add(key)
        result.append((os.path.expanduser(path), required))
    return result


def read_auth_file(path):
    """The parsed auth file (a dict with well-formed auths/credHelpers/credsStore)."""
    try:
        with open(path, "rb") as handle:
            raw = handle.read(MAX_AUTH_FILE_BYTES + 1)
    except (IOError, OSError) as exc:
        raise CredentialsError("cannot read auth file %s: %s" % (path, exc.strerror or type(exc).__name__))
    if len(raw) > MAX_AUTH_FILE_BYTES:
        raise CredentialsError("auth file %s is larger than %d bytes" % (path, MAX_AUTH_FILE_BYTES))
    try:
        data = json.loads(raw.decode("utf-8")) if raw.strip() else {}
    except UnicodeDecodeError:
        raise CredentialsError("auth file %s is not UTF-8 text" % path)
    except ValueError as exc:
        # JSONDecodeError's msg/lineno/colno describe the position, never the content.
        where = ""
        if getattr(exc, "lineno", None) is not None:
            where = " (%s at line %d, column %d)" % (exc.msg, exc.lineno, exc.colno)
        raise CredentialsError("auth file %s is not valid JSON%s" % (path, where))
    if not isinstance(data, dict):
        raise CredentialsError("auth file %s must hold a JSON object" % path)
    for section in ("auths", "credHelpers"):
        if section in data and data[section] is not None and not isinstance(data[section], dict):
            raise CredentialsError("auth file %s: %s must be an object" % (path, section))
    store = data.get("credsStore")
    if store is not None and not isinstance(store, str):
        raise CredentialsError("auth file %s: credsStore must be a string" % path)
    return data


def _matching_keys(keys, registry, repository):
    """Keys of `keys` that apply to registry/repository, most specific first (namespace, then host)."""
    host = normalize_registry(registry)
    repository = (repository or "").strip("/")
    scored = []
    for index, key in enumerate(keys):
        key_host, namespace = _split_key(key)
        if key_host != host:
            continue
        if namespace:
            if repository != namespace and not repository.startswith(namespace + "/"):
                continue
            score = len(namespace)
        else:
            score = -1
        exact = 0 if key == registry else 1
        scored.append((-score, exact, index, key))
    return [key for _score, _exact, _index, key in sorted(scored)]


def _entry_credentials(path, key, entry):
    """Credentials from one auths entry, or None when it holds none (e.g. {} next to credsStore)."""
    if entry is None:
        return None
    if not isinstance(entry, dict):
        raise CredentialsError("auth file %s: the entry for %s must be an object" % (path, key))
    source = "auth file %s" % path
    username = password = None
    encoded = entry.get("auth")
    if encoded:
        if not isinstance(encoded, str):
            raise CredentialsError("auth file %s: 'auth' of the entry for %s must be a string" % (path, key))
        try:
            decoded = base64.b64decode("".join(encoded.split()), validate=True).decode("utf-8")
        except (binascii.Error, ValueError, UnicodeDecodeError):
            raise CredentialsError("auth file %s: 'auth' of the entry for %s is not base64 of user:password"
                                   % (path, key))
        if ":" not in decoded:
            raise CredentialsError("auth file %s: 'auth' of the entry for %s is not base64 of user:password "
                                   "(no colon)" % (path, key))
        username, password = decoded.split(":", 1)
    else:
        for name in ("username", "password"):
            value = entry.get(name)
            if value is not None and not isinstance(value, str):
                raise CredentialsError("auth file %s: '%s' of the entry for %s must be a string" % (path, name, key))
        username, password = entry.get("username"), entry.get("password")
    identity_token = entry.get("identitytoken")
    if identity_token is not None and not isinstance(identity_token, str):
        raise CredentialsError("auth file %s: 'identitytoken' of the entry for %s must be a string" % (path, key))
    if identity_token:
        if username == "<token>":
            username = None
        return Credentials(username, None, identity_token=identity_token, source=source)
    if username and password:
        return Credentials(username, password, source=source)
    return None


def run_credential_helper(helper, server, origin, runner=None, timeout=HELPER_TIMEOUT):
    """Ask ``docker-credential-<helper> get`` for `server`; Credentials, or None when it has none.

    `origin` names where the helper was configured, for messages.
    """
    runner = runner or subprocess.run
    if not helper or not isinstance(helper, str) or os.sep in helper or helper.startswith("."):
        raise CredentialsError("%s names an invalid credential helper" % origin)
    program = HELPER_PREFIX + helper
    executable = shutil.which(program)
    if executable is None:
        raise CredentialsError("credential helper %s (%s) is not installed or not on PATH" % (program, origin))
    try:
        completed = runner([executable, "get"], input=server.encode("utf-8"), stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        raise CredentialsError("credential helper %s (%s) did not answer within %d seconds"
                               % (program, origin, timeout))
    except OSError as exc:
        raise CredentialsError("credential helper %s (%s) could not be run: %s"
                               % (program, origin, exc.strerror or type(exc).__name__))
    out = (completed.stdout or b"").decode("utf-8", "replace")
    if completed.returncode != 0:
        err = (completed.stderr or b"").decode("utf-8", "replace")
        said = (out.strip() or err.strip()).splitlines()
        first = said[0][:200] if said else ""
        if _NOT_FOUND in out.lower() or _NOT_FOUND in err.lower():
            return None
        raise CredentialsError("credential helper %s (%s) failed for %s with exit code %d%s"
                               % (program, origin, server, completed.returncode,
                                  ": %s" % first if first else ""))
    try:
        answer = json.loads(out)
    except ValueError:
        answer = None
    if not isinstance(answer, dict) or not isinstance(answer.get("Secret", ""), str) \
            or not isinstance(answer.get("Username", ""), str):
        # never quote the output: it may be a secret in the wrong shape
        raise CredentialsError("credential helper %s (%s) answered for %s with something other than "
                               "{\"Username\": ..., \"Secret\": ...}" % (program, origin, server))
    username, secret = answer.get("Username") or None, answer.get("Secret") or None
    if not secret:
        return None
    source = "credential helper %s (%s)" % (program, origin)
    if username == "<token>":
        return Credentials(None, None, identity_token=secret, source=source)
    if not username:
        raise CredentialsError("credential helper %s (%s) returned a secret without a Username for %s"
                               % (program, origin, server))
    return Credentials(username, secret, source=source)


def lookup_in_file(path, data, registry, repository=None, runner=None):
    """Credentials for registry/repository from one parsed auth file, or None."""
    helpers = data.get("credHelpers") or {}
    for key in _matching_keys(list(helpers), registry, repository):
        found = run_credential_helper(helpers[key], helper_server(registry),
                                      "credHelpers of %s" % path, runner=runner)
        if found is not None:
            return found
    auths = data.get("auths") or {}
    keys = _matching_keys(list(auths), registry, repository)
    for key in keys:
        found = _entry_credentials(path, key, auths[key])
        if found is not None:
            return found
    store = data.get("credsStore")
    if store:
        servers = [helper_server(registry)]
        servers += [k for k in keys if k not in servers]
        for server in servers:
            found = run_credential_helper(store, server, "credsStore of %s" % path, runner=runner)
            if found is not None:
                return found
    return None


def resolve(registry, repository=None, username=None, password=None, auth_file=None, environ=None, home=None,
            runner=None):
    """The Credentials to use for registry/repository (empty Credentials: anonymous)."""
    if username and password:
        return Credentials(username, password, source="the username/password options")
    for path, required in candidate_files(auth_file, environ, home):
        if not os.path.exists(path):
            if required:
                raise CredentialsError("auth_file %s does not exist" % path)
            continue
        if os.path.isdir(path):
            raise CredentialsError("auth file %s is a directory, not a file" % path)
        found = lookup_in_file(path, read_auth_file(path), registry, repository, runner=runner)
        if found is not None:
            return found
    return Credentials()
