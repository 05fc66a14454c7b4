# -*- coding: utf-8 -*-
# Copyright: contributors to imagepusher.registry
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""containers-registries.conf(5): find it, parse it, and answer "where is this image read from".

Honoured, as containers/image does: ``[[registry]]`` ``prefix`` / ``location`` rewriting,
``insecure``, ``blocked``, ``mirror-by-digest-only`` and ``[[registry.mirror]]`` (``location``,
``insecure``, ``pull-from-mirror``: all / digest-only / tag-only), and the v1 tables
``[registries.insecure]`` / ``[registries.block]``. Rewriting and mirrors apply where an image is
read; ``insecure`` and ``blocked`` to every registry. ``unqualified-search-registries``,
``[aliases]`` and short-name settings are not used: a short name keeps meaning Docker Hub.

Lookup (the first that applies): the ``registries_conf`` option (that file alone), else
``$CONTAINERS_REGISTRIES_CONF``, else ``$XDG_CONFIG_HOME/containers/registries.conf`` (by default
``~/.config/containers/registries.conf``), else ``/etc/containers/registries.conf``; after the
main file the drop-ins ``/etc/containers/registries.conf.d/*.conf`` and, unless the main file is
the user's, ``~/.config/containers/registries.conf.d/*.conf`` are read in name order (a drop-in's
``[[registry]]`` replaces an earlier one with the same prefix).

TOML is read with ``tomllib`` (Python 3.11+) or the ``tomli`` package; without either, a
registries.conf that exists is reported in a warning rather than silently ignored.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os

from ansible_collections.imagepusher.registry.plugins.module_utils._errors import ImagePusherError
from ansible_collections.imagepusher.registry.plugins.module_utils._reference import ImageReference

SYSTEM_FILE = "/etc/containers/registries.conf"
SYSTEM_DROP_INS = "/etc/containers/registries.conf.d"
PULL_FROM_MIRROR = ("", "all", "digest-only", "tag-only")
# Read at most this much of one file: a registries.conf is a few KiB.
MAX_FILE_SIZE = 1024 * 1024


class RegistriesConfError(ImagePusherError):
    """A registries.conf that cannot be read or does not mean anything we can follow."""


class BlockedRegistryError(ImagePusherError):
    """The registry is marked ``blocked = true`` in registries.conf."""


class Location:
    """One place an image can be read from: a reference at a host, and how to talk to it."""

    def __init__(self, reference, insecure=False, mirror=False):
        self.reference = reference
        self.insecure = insecure
        self.mirror = mirror

    def __repr__(self):
        return "Location(%s, insecure=%r, mirror=%r)" % (self.reference, self.insecure, self.mirror)


class Registry:
    """One ``[[registry]]`` entry."""

    def __init__(self, prefix, location, insecure=False, blocked=False, mirrors=(), digest_only=False, source=None):
        self.prefix = prefix
        self.location = location
        self.insecure = insecure
        self.blocked = blocked
        self.mirrors = list(mirrors)  # [(location, insecure, pull_from_mirror)]
        self.digest_only = digest_only  # mirror-by-digest-only
        self.source = source  # the file it came from, for messages

    def matches(self, name):
        """The length of the match of this entry's prefix on `name` (registry/repository), or -1."""
        if self.prefix.startswith("*."):
            host = name.split("/", 1)[0]
            return len(self.prefix) if host.endswith(self.prefix[1:]) else -1
        if name == self.prefix or (name.startswith(self.prefix) and name[len(self.prefix)] in "/:@"):
            return len(self.prefix)
        return -1

    def rewrite(self, name, location):
        """`name` with this entry's prefix replaced by `location` (a wildcard entry keeps the name)."""
        if self.prefix.startswith("*.") or not location:
            return name
        return location + name[len(self.prefix):]


class RegistriesConf:
    """The [[registry]] entries in force, and the files they came from."""

    def __init__(self, registries=(), files=(), warnings=()):
        self.registries = list(registries)
        self.files = list(files)
        self.warnings = list(warnings)

    def find(self, reference):
        """The entry whose prefix matches `reference` longest, or None."""
        best, length = None, -1
        for entry in self.registries:
            found = entry.matches(reference.name)
            if found > length:
                best, length = entry, found
        return best

    def check_registry(self, reference):
        """Whether `reference`'s registry is insecure; raises BlockedRegistryError when it is blocked."""
        entry = self.find(reference)
        if entry is None:
            return False
        if entry.blocked:
            raise BlockedRegistryError("registry %s is blocked by %s ([[registry]] prefix %r has blocked = true)"
                                       % (reference.name, entry.source, entry.prefix), registry=reference.registry)
        return entry.insecure

    def pull_sources(self, reference):
        """Where to read `reference` from, in order: its mirrors that apply, then its (rewritten) location."""
        insecure = self.check_registry(reference)
        entry = self.find(reference)
        if entry is None:
            return [Location(reference)]
        sources = []
        for location, mirror_insecure, pull_from_mirror in entry.mirrors:
            if reference.digest is None and (entry.digest_only or pull_from_mirror == "digest-only"):
                continue
            if reference.digest is not None and pull_from_mirror == "tag-only":
                continue
            sources.append(Location(_relocate(reference, entry.rewrite(reference.name, location), entry),
                                    mirror_insecure, mirror=True))
        sources.append(Location(_relocate(reference, entry.rewrite(reference.name, entry.location), entry), insecure))
        return sources


def _relocate(reference, name, entry):
    """`reference` (its tag and digest) at the repository `name`."""
    if name == reference.name:
        return reference
    text = name + ("" if reference.tag is None else ":" + reference.tag) + (
        "" if reference.digest is None else "@" + reference.digest)
    try:
        return ImageReference.parse(text, default_tag=None)
    except ImagePusherError as exc:
        raise RegistriesConfError("%s: [[registry]] prefix %r rewrites %s to %s, which is not a valid reference: %s"
                                  % (entry.source, entry.prefix, reference, text, exc.message))


# -- finding and reading the files -------------------------------------------------------

def user_file(environ, home):
    config_home = environ.get("XDG_CONFIG_HOME") or os.path.join(home, ".config")
    return os.path.join(config_home, "containers", "registries.conf")


def find_files(explicit=None, environ=None, home=None):
    """The files to read, main file first then drop-ins (those that exist), as the module docs say."""
    environ = os.environ if environ is None else environ
    home = home or os.path.expanduser("~")
    if explicit:
        return [explicit]
    user = user_file(environ, home)
    main = environ.get("CONTAINERS_REGISTRIES_CONF") or (user if os.path.isfile(user) else SYSTEM_FILE)
    dirs = [SYSTEM_DROP_INS]
    if main != user:
        dirs.append(user + ".d")
    files = [main] if os.path.isfile(main) else []
    for directory in dirs:
        try:
            names = sorted(n for n in os.listdir(directory) if n.endswith(".conf"))
        except OSError:
            continue
        files.extend(os.path.join(directory, n) for n in names if os.path.isfile(os.path.join(directory, n)))
    return files


def load(explicit=None, environ=None, home=None):
    """The RegistriesConf in force: `explicit` (the registries_conf option) or the lookup order."""
    if explicit and not os.path.isfile(explicit):
        raise RegistriesConfError("registries_conf %s does not exist or is not a file" % explicit)
    files = find_files(explicit, environ, home)
    if files and toml_reader() is None:
        return RegistriesConf(files=files, warnings=[
            "%s is not used: reading it needs Python 3.11+ (tomllib) or the tomli package (python3-tomli) on the "
            "managed host; registry rewriting, mirrors, insecure and blocked settings there are ignored"
            % ", ".join(files)])
    by_prefix = {}
    for path in files:
        for entry in parse(read_file(path), path):
            by_prefix[entry.prefix] = entry  # a later file's entry for the same prefix replaces the earlier
    return RegistriesConf(by_prefix.values(), files)


def toml_reader():
    """tomllib (Python 3.11+), else the tomli package, else None. Imported only when a file is there to read:
    most runs have none, and tomllib costs every module start about 15 ms."""
    try:
        import tomllib as toml
    except ImportError:  # pragma: no cover - depends on the host's Python
        try:
            import tomli as toml
        except ImportError:
            return None
    return toml


def read_file(path):
    try:
        with open(path, "rb") as handle:
            data = handle.read(MAX_FILE_SIZE + 1)
    except (IOError, OSError) as exc:
        raise RegistriesConfError("cannot read registries.conf %s: %s" % (path, exc.strerror or exc), registries_conf=path)
    if len(data) > MAX_FILE_SIZE:
        raise RegistriesConfError("registries.conf %s is larger than %d bytes" % (path, MAX_FILE_SIZE), registries_conf=path)
    toml = toml_reader()
    try:
        text = data.decode("utf-8")
        return toml.loads(text)
    except UnicodeDecodeError:
        raise RegistriesConfError("registries.conf %s is not UTF-8 text" % path, registries_conf=path)
    except toml.TOMLDecodeError as exc:
        # tomllib's message ends with "(at line N, column M)"
        raise RegistriesConfError("registries.conf %s is not valid TOML: %s" % (path, exc), registries_conf=path)


def parse(data, source):
    """The [[registry]] entries of one parsed file (v2 format, plus v1's insecure and block lists)."""
    entries = [_entry(item, number, source) for number, item in enumerate(_list(data, "registry", source))]
    v1 = data.get("registries")
    if isinstance(v1, dict):
        for table, flag in (("insecure", "insecure"), ("block", "blocked")):
            for host in _list(v1.get(table) or {}, "registries", source):
                entries.append(Registry(host, host, source=source, **{flag: True}))
    return entries


def _list(table, key, source):
    value = table.get(key, [])
    if not isinstance(value, list) or not all(isinstance(v, (dict, str)) for v in value):
        raise RegistriesConfError("registries.conf %s: %r must be a list" % (source, key), registries_conf=source)
    return value


def _entry(item, number, source):
    where = "registries.conf %s: [[registry]] number %d" % (source, number + 1)
    if not isinstance(item, dict):
        raise RegistriesConfError("%s is not a table" % where, registries_conf=source)
    location = _text(item, "location", where, source)
    prefix = _text(item, "prefix", where, source) or location
    if not prefix:
        raise RegistriesConfError("%s has neither prefix nor location" % where, registries_conf=source)
    if prefix.startswith("*.") and location:
        raise RegistriesConfError("%s: a wildcard prefix %r cannot have a location" % (where, prefix), registries_conf=source)
    mirrors = []
    for mirror in _list(item, "mirror", source):
        if not isinstance(mirror, dict) or not _text(mirror, "location", where, source):
            raise RegistriesConfError("%s: every [[registry.mirror]] needs a location" % where, registries_conf=source)
        pull_from_mirror = _text(mirror, "pull-from-mirror", where, source)
        if pull_from_mirror not in PULL_FROM_MIRROR:
            raise RegistriesConfError("%s: pull-from-mirror must be all, digest-only or tag-only, not %r"
                                      % (where, pull_from_mirror), registries_conf=source)
        mirrors.append((mirror["location"], _flag(mirror, "insecure", where, source), pull_from_mirror))
    return Registry(prefix, location, insecure=_flag(item, "insecure", where, source),
                    blocked=_flag(item, "blocked", where, source), mirrors=mirrors,
                    digest_only=_flag(item, "mirror-by-digest-only", where, source), source=source)


def _text(table, key, where, source):
    value = table.get(key, "")
    if not isinstance(value, str):
        raise RegistriesConfError("%s: %s must be a string" % (where, key), registries_conf=source)
    return value.rstrip("/")


def _flag(table, key, where, source):
    value = table.get(key, False)
    if not isinstance(value, bool):
        raise RegistriesConfError("%s: %s must be true or false" % (where, key), registries_conf=source)
    return value
