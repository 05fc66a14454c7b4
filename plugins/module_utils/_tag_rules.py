# -*- coding: utf-8 -*-
# Copyright: contributors to imagepusher.registry
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Tag rules: which tags of a repository a sync entry selects, and in what order.

    include     regexes; a tag is kept when ANY matches the WHOLE tag (re.fullmatch); default: every tag
    exclude     regexes; a tag is dropped when ANY matches the whole tag
    semver      a range (see _semver); tags that are not versions are dropped
    latest      keep the N highest versions of what is left; tags that are not versions are dropped
    prerelease  true: pre-release versions are never dropped for being pre-releases;
                false: they are always dropped (with or without semver/latest);
                unset: semver follows node-semver (only a range naming a pre-release of the
                same version admits it), latest alone drops them, include/exclude alone keep them

Order of the selection: versions first, highest first (``v1.10.0`` before ``v1.2.0``; tags of
equal versions, ``1.2`` and ``v1.2.0``, by name), then tags that are not versions, by name.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import re

from ansible_collections.imagepusher.registry.plugins.module_utils._errors import InvalidOptionError
from ansible_collections.imagepusher.registry.plugins.module_utils._semver import Range, RangeError, parse_version

RULE_KEYS = ("include", "exclude", "semver", "latest", "prerelease")
PATTERN_MAX_LENGTH = 1024


class TagRules:
    """Validated rules; build them with TagRules.from_option(value, where)."""

    def __init__(self, include=(), exclude=(), semver=None, latest=None, prerelease=None):
        self.include = tuple(include)  # compiled patterns
        self.exclude = tuple(exclude)
        self.semver = semver  # a Range or None
        self.latest = latest
        self.prerelease = prerelease

    @classmethod
    def from_option(cls, value, where):
        """TagRules from an entry's `tags` dict; InvalidOptionError naming `where` (e.g. images[2].tags) otherwise."""
        if not isinstance(value, dict):
            raise InvalidOptionError("%s: must be a dictionary with the keys %s" % (where, ", ".join(RULE_KEYS)))
        unknown = sorted(str(k) for k in value if k not in RULE_KEYS)
        if unknown:
            raise InvalidOptionError("%s: unknown key%s %s (the keys are %s)" % (
                where, "s" if len(unknown) > 1 else "", ", ".join(unknown), ", ".join(RULE_KEYS)))
        return cls(include=_patterns(value.get("include"), where + ".include"),
                   exclude=_patterns(value.get("exclude"), where + ".exclude"),
                   semver=_range(value.get("semver"), where + ".semver"),
                   latest=_latest(value.get("latest"), where + ".latest"),
                   prerelease=_flag(value.get("prerelease"), where + ".prerelease"))

    @property
    def reads_versions(self):
        return self.semver is not None or self.latest is not None

    def select(self, tags):
        """The tags these rules keep, in the order above (each tag once)."""
        versions, others = [], []
        for tag in sorted(set(tags)):
            if self.include and not any(p.fullmatch(tag) for p in self.include):
                continue
            if any(p.fullmatch(tag) for p in self.exclude):
                continue
            version = parse_version(tag)
            if version is None:
                if not self.reads_versions:
                    others.append(tag)
                continue
            if self._admits(version):
                versions.append((version, tag))
        # Highest version first; a stable sort (reverse=True keeps it stable) leaves equal versions by name.
        versions.sort(key=lambda pair: pair[0], reverse=True)
        versions = [tag for _version, tag in versions]
        if self.latest is not None:
            versions = versions[:self.latest]
        return versions + others

    def _admits(self, version):
        if version.prerelease and self.prerelease is False:
            return False
        if self.semver is not None:
            return self.semver.matches(version, prerelease=bool(self.prerelease))
        return not version.prerelease or self.prerelease or self.latest is None


def _patterns(value, where):
    if value is None:
        return ()
    if isinstance(value, str) or not isinstance(value, (list, tuple)):
        raise InvalidOptionError("%s: must be a list of regular expressions" % where)
    compiled = []
    for number, pattern in enumerate(value):
        if not isinstance(pattern, str) or not pattern or len(pattern) > PATTERN_MAX_LENGTH:
            raise InvalidOptionError("%s[%d]: must be a non-empty string of at most %d characters"
                                     % (where, number, PATTERN_MAX_LENGTH))
        try:
            compiled.append(re.compile(pattern))
        except re.error as exc:
            raise InvalidOptionError("%s[%d]: %r is not a valid regular expression: %s" % (where, number, pattern, exc))
    return compiled


def _range(value, where):
    if value is None:
        return None
    try:
        return Range.parse(value)
    except RangeError as exc:
        raise InvalidOptionError("%s: %s" % (where, exc))


def _latest(value, where):
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InvalidOptionError("%s: must be a whole number of at least 1, not %r" % (where, value))
    return value


def _flag(value, where):
    if value is not None and not isinstance(value, bool):
        raise InvalidOptionError("%s: must be true or false, not %r" % (where, value))
    return value
