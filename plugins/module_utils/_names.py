# -*- coding: utf-8 -*-
# Copyright: contributors to imagepusher.registry
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Reference <-> cache name: the one set of rules every module and module_utils file uses.

The cache (an OCI image layout) names each image in index.json with the annotation
``org.opencontainers.image.ref.name``: the full normalized reference image_pull was given
(``docker.io/library/nginx:1.27``), followed by ``+<platform>`` parts when the pull was
narrowed (``127.0.0.1:5000/team/app:v1+linux-amd64+linux-arm64-v8``).

A name a user gives designates index.json entries by these rules, first match wins:

1. with platforms, the pull narrowed to exactly those platforms, except over a name a
   foreign OCI layout holds exactly (its names are its author's, not image_pull's);
2. the name as given: an exact ref name;
3. a digest (``sha256:...``): every entry pointing at it, and nothing else;
4. the name normalized the way image_pull names images (``nginx`` is
   ``docker.io/library/nginx:latest``).

resolve() returns what they designate; find_source() (image_push) takes the first, and
also accepts the only image of a layout, or the bare digest of a blob it stores.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.imagepusher.registry.plugins.module_utils import _digest
from ansible_collections.imagepusher.registry.plugins.module_utils import _manifest
from ansible_collections.imagepusher.registry.plugins.module_utils._cache_index import ref_name  # beside index.json's parsing
from ansible_collections.imagepusher.registry.plugins.module_utils._errors import ImagePusherError, NotCachedError
from ansible_collections.imagepusher.registry.plugins.module_utils._reference import ImageReference

# Joins a reference and the platforms of a narrowed pull ('+' is allowed in a ref.name, never in a reference).
PLATFORM_SEPARATOR = "+"
DIGEST_PREFIXES = tuple(sorted(algorithm + ":" for algorithm in _digest.ALGORITHMS))


# -- platforms and the names a pull gives ---------------------------------------------

def normalize_platforms(platforms):
    """Sorted unique canonical platform strings ('linux/arm64/v8'), or None for 'all'.

    Canonical, so that 'linux/arm64', 'linux/aarch64' and 'Linux/ARM64/8' name one thing in the cache.
    """
    if not platforms:
        return None
    canonical = set()
    for text in platforms:
        platform = _manifest.parse_platform(text)  # raises a clear error for a malformed one
        if platform["architecture"] == "arm64" and not platform.get("variant"):
            platform["variant"] = "v8"  # arm64 without a variant is v8 (as in the OCI image index spec)
        canonical.add("/".join(platform[k] for k in ("os", "architecture", "variant") if platform.get(k)))
    return sorted(canonical)


def cache_name(reference, wanted):
    """The name an image gets in index.json: the reference, plus the platforms when narrowed.

    A narrowed pull is different content from the full image, so it needs a name of its
    own; otherwise pulling one reference with two platform choices would flip the name
    between them on every run.
    """
    name = str(reference)
    if wanted:
        name += PLATFORM_SEPARATOR + PLATFORM_SEPARATOR.join(p.replace("/", "-") for p in wanted)
    return name


# -- reading a cache name back -----------------------------------------------------------

def split_cache_name(name):
    """(reference text, platforms part) of a cache name; the platforms part is '' for a full pull.

    'reg/app:v1+linux-amd64+linux-arm64-v8' -> ('reg/app:v1', 'linux-amd64+linux-arm64-v8').
    """
    reference_text, _sep, platforms_part = name.partition(PLATFORM_SEPARATOR)
    return reference_text, platforms_part


def reference_of(name, default_tag="latest"):
    """The ImageReference a cache name was pulled as, or None when it is no reference.

    A foreign layout may name images freely ("my build"): such a name has no reference.
    """
    try:
        return ImageReference.parse(split_cache_name(name)[0], default_tag=default_tag)
    except ImagePusherError:
        return None


def repository_of(name):
    """'registry/repository' of a cache name ('...:v1+linux-amd64' included), or None."""
    reference = reference_of(name)
    return reference.name if reference is not None else None


def default_target_tag(target_text, source_name):
    """The target reference; without a tag or digest it takes the source's tag (else latest)."""
    target = ImageReference.parse(target_text, default_tag=None)
    if target.tag or target.digest:
        return target
    source = reference_of(source_name, default_tag=None)
    return target.with_tag((source.tag if source is not None else None) or "latest")


# -- index.json entries ------------------------------------------------------------------

def entry_name(entry):
    """What an entry is called in results and messages: its ref name, else its digest."""
    return ref_name(entry) or entry.get("digest")


def cache_tags(entries, repository):
    """Sorted tags the cache names in `repository` ('registry/repository'), narrowed pulls included."""
    tags = set()
    for entry in entries:
        name = ref_name(entry)
        if not name:
            continue
        reference = reference_of(name, default_tag=None)
        if reference is not None and reference.name == repository and reference.tag:
            tags.add(reference.tag)
    return sorted(tags)


# -- resolving a name a user gives ---------------------------------------------------------

def resolve(entries, name, platforms=None, exact_wins=False):
    """The (ref name, entry) pairs of index.json that `name` designates, by the rules above; [] when none.

    `platforms`: prefer the pull narrowed to exactly these; `exact_wins`: not over an exact ref name.
    """
    by_name = dict((ref_name(e), e) for e in entries if ref_name(e))
    if name in by_name and (exact_wins or not platforms):
        return [(name, by_name[name])]
    reference, narrowed = _pull_names(name, platforms)
    for candidate in (narrowed, name):
        if candidate in by_name:
            return [(candidate, by_name[candidate])]
    if name.startswith(DIGEST_PREFIXES):
        return [(entry_name(e), e) for e in entries if e.get("digest") == name]
    normalized = str(reference) if reference is not None else None
    if normalized in by_name:
        return [(normalized, by_name[normalized])]
    return []


def _pull_names(name, platforms):
    """(reference, narrowed cache name) image_pull gives `name` with `platforms`; None for what it gives none.

    Malformed platforms name no pull at all: only the exact name is tried, and the push reports them.
    """
    try:
        reference = ImageReference.parse(name)
        wanted = normalize_platforms(platforms)
    except ImagePusherError:
        return None, None
    return reference, (cache_name(reference, wanted) if wanted else None)


def find_source(cache, name, layout=False, platforms=None):
    """(ref name, index.json entry) for an image in a cache or OCI layout, or NotCachedError.

    `name` is a reference as it was pulled (normalized like image_pull does), an exact
    ref name from a foreign layout, a digest, or None for the only image of a layout.
    With `platforms`, a pull narrowed to exactly those platforms is preferred.
    """
    if layout and not cache.exists():
        raise NotCachedError("%s is not an OCI image layout (it has no index.json)" % cache.root, path=cache.root)
    entries = cache.entries() if cache.exists() else []
    where = ("OCI layout %s" if layout else "cache %s") % cache.root
    if name is None:
        if len(entries) == 1:
            return entry_name(entries[0]), entries[0]
        raise NotCachedError("%s holds %d images; set name to one of: %s" % (where, len(entries), _listing(entries)))
    found = resolve(entries, name, platforms, exact_wins=layout)
    if found:
        return found[0]
    if name.startswith(DIGEST_PREFIXES) and cache.has_blob(_digest.validate(name)):
        return name, {"digest": name, "mediaType": None}
    hint = "pull it first with imagepusher.registry.image_pull" if not layout else "the layout names: %s" % _listing(entries)
    from ansible_collections.imagepusher.registry.plugins.module_utils import _close_names  # only a failure needs it (and difflib)
    close = _close_names.close_names(name, [entry_name(e) for e in entries])
    raise NotCachedError("image %s is not in the %s%s: %s" % (name, where, _close_names.hint(close), hint),
                         name=name, did_you_mean=close or None)


def _listing(entries):
    return ", ".join(sorted(entry_name(e) for e in entries)) or "(none)"
