# -*- coding: utf-8 -*-
# Copyright: contributors to imagepusher.registry
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Tags read as semantic versions, and version ranges with npm's (node-semver's) rules.

A tag is a version when it reads ``[v]MAJOR[.MINOR[.PATCH]][-PRERELEASE][+BUILD]``; a
missing minor or patch is 0 (``1.4`` is 1.4.0, ``v2`` is 2.0.0). Anything else is not a
version (``latest``, ``foo``, ``1.2.3.4``).

A range is one or more sets joined by ``||``; a set is comparators separated by spaces, all
of which must hold: ``>=1.2 <2``, ``~1.4``, ``^2``, ``=1.2.3``, ``1.2`` (1.2.x), ``1.x``,
``*``, ``<=2``, ``>1.4``, ``1.2 - 2.3`` (hyphen ranges). Partial versions and ``~``/``^``
desugar exactly as in node-semver, upper bounds as ``<X.Y.Z-0`` so that no pre-release of
the bound matches. A pre-release version matches a set only when a comparator of that set
names a pre-release of the same MAJOR.MINOR.PATCH (``>=1.11.0-rc1``), or when the caller
includes pre-releases.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import re

_NUMBER = r"0|[1-9][0-9]{0,17}|0[0-9]{1,17}"  # leading zeros are read (tags are not strict semver)
_IDENTIFIER = r"[0-9A-Za-z-]+"
_VERSION_RE = re.compile(r"[vV]?(?P<major>{n})(?:\.(?P<minor>{n}))?(?:\.(?P<patch>{n}))?"
                         r"(?:-(?P<pre>{i}(?:\.{i})*))?(?:\+{i}(?:\.{i})*)?".format(n=_NUMBER, i=_IDENTIFIER))
# In a range, parts may also be wildcards (x, X, *), and a missing part means the same.
_WILD = r"x|X|\*"
_PARTIAL_RE = re.compile(r"[vV]?(?P<major>{n}|{w})(?:\.(?P<minor>{n}|{w}))?(?:\.(?P<patch>{n}|{w}))?"
                         r"(?:-(?P<pre>{i}(?:\.{i})*))?(?:\+{i}(?:\.{i})*)?".format(n=_NUMBER, w=_WILD, i=_IDENTIFIER))
_COMPARATOR_RE = re.compile(r"(?P<op><=|>=|<|>|=|~>|~|\^)?(?P<version>\S+)")
_OPERATORS = {
    "<": lambda a, b: a < b,
    "<=": lambda a, b: a <= b,
    ">": lambda a, b: a > b,
    ">=": lambda a, b: a >= b,
    "=": lambda a, b: a == b,
}
RANGE_MAX_LENGTH = 1024


class RangeError(ValueError):
    """A range that cannot be read; its text says why."""


class Version:
    """A version: (major, minor, patch) and pre-release identifiers, ordered as semver orders them."""

    __slots__ = ("major", "minor", "patch", "prerelease", "_key")

    def __init__(self, major, minor=0, patch=0, prerelease=()):
        self.major, self.minor, self.patch = int(major), int(minor), int(patch)
        self.prerelease = tuple(prerelease)
        # No pre-release sorts above any pre-release; numeric identifiers sort below alphanumeric ones.
        pre_key = tuple((0, int(p), "") if p.isdigit() else (1, 0, p) for p in self.prerelease)
        self._key = (self.major, self.minor, self.patch, 0 if self.prerelease else 1, pre_key)

    @property
    def core(self):
        return (self.major, self.minor, self.patch)

    def __eq__(self, other):
        return isinstance(other, Version) and self._key == other._key

    def __ne__(self, other):
        return not self == other

    def __lt__(self, other):
        return self._key < other._key

    def __le__(self, other):
        return self._key <= other._key

    def __gt__(self, other):
        return self._key > other._key

    def __ge__(self, other):
        return self._key >= other._key

    def __hash__(self):
        return hash(self._key)

    def __repr__(self):
        return "Version(%s)" % self

    def __str__(self):
        text = "%d.%d.%d" % self.core
        return text + ("-" + ".".join(self.prerelease) if self.prerelease else "")


def parse_version(text):
    """The Version a tag reads as, or None when it is not a version."""
    match = _VERSION_RE.fullmatch(text) if isinstance(text, str) else None
    if match is None:
        return None
    pre = match.group("pre")
    return Version(match.group("major"), match.group("minor") or 0, match.group("patch") or 0,
                   pre.split(".") if pre else ())


class Range:
    """A parsed range: ``Range.parse(">=1.2 <2").matches(Version(1, 4))``."""

    def __init__(self, text, sets):
        self.text = text
        self.sets = sets  # [[(operator, Version)]]; an empty set matches every version

    @classmethod
    def parse(cls, text):
        if not isinstance(text, str) or not text.strip():
            raise RangeError("a range must be a non-empty string such as '>=1.2 <2', '~1.4' or '^2'")
        if len(text) > RANGE_MAX_LENGTH:
            raise RangeError("the range is longer than %d characters" % RANGE_MAX_LENGTH)
        return cls(text, [_parse_set(part.strip(), text) for part in text.split("||")])

    def matches(self, version, prerelease=False):
        """True when `version` is in the range; pre-releases by the rules above (`prerelease`: always allowed)."""
        return any(_set_matches(comparators, version, prerelease) for comparators in self.sets)


def _set_matches(comparators, version, prerelease):
    if not all(_OPERATORS[op](version, bound) for op, bound in comparators):
        return False
    if not version.prerelease or prerelease:
        return True
    return any(bound.prerelease and bound.core == version.core for _op, bound in comparators)


def _parse_set(text, whole):
    # "1.2 - 2.3" is a hyphen range; ">= 1.2" is ">=1.2" (node allows the space).
    text = re.sub(r"(<=|>=|<|>|=|~>|~|\^)\s+", r"\1", text)
    hyphen = re.fullmatch(r"(\S+)\s+-\s+(\S+)", text)
    if hyphen:
        low, high = _partial(hyphen.group(1), whole), _partial(hyphen.group(2), whole)
        return _desugar(">=", low) + _desugar("<=", high)
    if not text:
        raise RangeError("%r has an empty part around '||'" % whole)
    comparators = []
    for word in text.split():
        match = _COMPARATOR_RE.fullmatch(word)
        comparators.extend(_desugar(match.group("op") or "=", _partial(match.group("version"), whole)))
    return comparators


def _partial(text, whole):
    """(major, minor, patch, prerelease) with None for a missing or wildcard part."""
    match = _PARTIAL_RE.fullmatch(text)
    if match is None:
        raise RangeError("%r in %r is not a version (write e.g. 1, 1.4, 1.4.2, v1.4.2-rc1 or 1.x)" % (text, whole))
    parts = [match.group(name) for name in ("major", "minor", "patch")]
    parts = [None if p is None or p in ("x", "X", "*") else int(p) for p in parts]
    for i in range(1, 3):  # a part after a wildcard is a wildcard too ("1.x.3" is "1.x")
        if parts[i - 1] is None:
            parts[i] = None
    pre = match.group("pre")
    return parts[0], parts[1], parts[2], tuple(pre.split(".")) if pre and parts[2] is not None else ()


def _bump(major, minor=None):
    """The '-0' bound just below the next major (or minor) version."""
    if minor is None:
        return Version(major + 1, 0, 0, ("0",))
    return Version(major, minor + 1, 0, ("0",))


def _desugar(op, partial):
    """[(operator, Version)] for one comparator, as node-semver desugars it."""
    major, minor, patch, pre = partial
    if op == "~>":
        op = "~"
    if major is None:  # "*", ">=*": any version; "<*", ">*": none
        return [] if op in ("=", ">=", "<=", "~", "^") else [("<", Version(0, 0, 0, ("0",)))]
    low = Version(major, minor or 0, patch or 0, pre)
    if op == "^":
        if major or minor is None:
            return [(">=", low), ("<", _bump(major))]
        if minor or patch is None:
            return [(">=", low), ("<", _bump(major, minor))]
        return [(">=", low), ("<", Version(major, minor, patch + 1, ("0",)))]
    if op == "~":
        return [(">=", low), ("<", _bump(major, minor) if minor is not None else _bump(major))]
    if patch is not None:
        return [(op, low)]
    upper = _bump(major, minor)  # the first version past the partial one (minor None: next major)
    return {
        "=": [(">=", low), ("<", upper)],
        ">=": [(">=", low)],
        ">": [(">=", upper.__class__(upper.major, upper.minor, upper.patch))],
        "<": [("<", Version(major, minor or 0, 0, ("0",)))],
        "<=": [("<", upper)],
    }[op]
