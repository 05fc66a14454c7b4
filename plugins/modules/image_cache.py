#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: contributors to imagepusher.registry
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: image_cache
short_description: List, clean up, verify, export and import the on-host image cache
version_added: 0.1.0
description:
  - Manages the cache that M(imagepusher.registry.image_pull) fills and M(imagepusher.registry.image_push) reads,
    an OCI image layout shared by every image. No registry is contacted.
  - O(state=present) lists the images and the disk usage. It changes nothing.
  - O(state=absent) removes the names in O(name) from the cache's C(index.json). Their blobs stay on disk,
    O(state=pruned) removes what no name reaches any more.
  - O(state=pruned) deletes the blobs no name reaches (every manifest, config and layer of every named image
    is kept), optionally only those older than O(older_than), and partial downloads no run is writing.
  - O(state=verified) hashes every blob again and reports those whose content does not match their digest;
    with O(remove_bad=true) it deletes them, so the next pull downloads them again.
  - O(state=exported) writes the images in O(name) to an OCI archive at O(path), for example to carry them
    across an air gap. C(skopeo copy oci-archive:<path>:<name> ...) reads it.
  - O(state=imported) loads an OCI archive (such as one O(state=exported) wrote) or a C(docker save) tarball
    from O(path) into the cache, verifying every blob, and names its images.
author:
  - imagepusher.registry contributors (@imagepusher)
extends_documentation_fragment:
  - imagepusher.registry.attributes
attributes:
  check_mode:
    support: full
    details: Reports what would be removed, deleted, written or loaded; writes nothing.
  diff_mode:
    support: full
    details:
      - O(state=absent) and O(state=imported) show the cache's names (and digests) before and after.
      - O(state=pruned) shows the number of blobs and their bytes before and after.
      - O(state=verified) shows the bad blobs before and after; O(state=exported) the images in the archive.
  idempotent:
    support: full
    details:
      - O(state=exported) rewrites nothing when O(path) already holds the same archive (same C(index.json) and
        members; their content is not hashed again, set O(force=true) to rewrite it).
options:
  state:
    description:
      - What to do, see the description.
    type: str
    choices: [present, absent, pruned, verified, exported, imported]
    default: present
  cache_dir:
    description:
      - The on-host cache. Defaults to C($XDG_CACHE_HOME/imagepusher), or C(~/.cache/imagepusher).
    type: path
  name:
    description:
      - Images in the cache, each a reference as it was pulled (normalized the same way, so V(nginx) is
        C(docker.io/library/nginx:latest)), a name exactly as the cache holds it, or a digest (every name
        pointing at it).
      - Required with O(state=absent) and O(state=exported). With O(state=present), only these are listed.
    type: list
    elements: str
  path:
    description:
      - The archive file, written by O(state=exported) (its directory must exist), read by O(state=imported).
      - For O(state=imported), an OCI archive (a tar of an OCI image layout) or a C(docker save) tarball,
        uncompressed or compressed with gzip, bzip2 or xz.
    type: path
  older_than:
    description:
      - With O(state=pruned), only delete blobs and partial downloads last written longer ago than this,
        for example V(12h), V(7d), V(30m), V(2w), or a number of seconds.
      - Keeps what a recently removed image used, in case it is pulled again, and leaves a margin for
        pulls that run while the prune does.
    type: str
  remove_bad:
    description:
      - With O(state=verified), delete the blobs whose content does not match their digest, and the symbolic links
        and other non-regular entries under C(blobs/) (the entry itself, never what a link points at).
      - Images that need them are then reported in RV(incomplete), pull them again.
    type: bool
    default: false
  force:
    description:
      - With O(state=exported), write the archive even when O(path) already holds the same one.
    type: bool
    default: false
notes:
  - Prune and concurrent runs. The prune holds the cache's C(index) lock from the moment it reads which blobs
    the names reach until its last deletion, so no name is added meanwhile, and it never deletes a blob written
    or renamed into the cache after it started (it compares each blob's mtime and ctime with a time stamp it
    takes from the cache's own file system), nor a partial download a run is writing. A pull that started
    before the prune can still rely on an old unreferenced blob it found cached; O(older_than) covers that.
  - O(state=imported) names images from an OCI archive by their C(org.opencontainers.image.ref.name)
    (C(io.containerd.image.name) when present, as in C(docker save) since Docker 25), and images from an older
    C(docker save) tarball by their C(RepoTags) (normalized, C(nginx:1.27) is C(docker.io/library/nginx:1.27));
    for those, a Docker v2 schema 2 manifest is built, so their digest is new. An image without any name is
    named by its digest.
  - Archive members are never extracted to the file system. An archive with an absolute member name or one
    containing C(..) is refused.
  - "Import limits: an archive with more than 20,000 members, a tar header (pax, GNU long name) over 4 MiB, or that
    decompresses to more than the files its images use (declared blobs, manifests, configs, layout files) plus
    1.5 KiB per member and 4 MiB of small files no image uses, is refused before anything is written to the cache.
    Image names in an archive must be valid image references."
  - The cache never follows a symbolic link below O(cache_dir), and C(index.json) is read only up to 16 MiB and
    must be an OCI image index; see the README section "Security" for what a shared cache needs.
seealso:
  - module: imagepusher.registry.image_pull
  - module: imagepusher.registry.image_push
  - module: imagepusher.registry.image_info
"""

EXAMPLES = r"""
- name: List the cache and its disk usage
  imagepusher.registry.image_cache:
    cache_dir: /var/cache/imagepusher
  register: cache

- name: Forget an image (its blobs go at the next prune)
  imagepusher.registry.image_cache:
    state: absent
    name:
      - docker.io/library/nginx:1.25
    cache_dir: /var/cache/imagepusher

- name: Free the space of blobs no image uses any more, keeping those written in the last week
  imagepusher.registry.image_cache:
    state: pruned
    older_than: 7d
    cache_dir: /var/cache/imagepusher
  register: pruned

- name: Check every blob, and delete damaged ones so the next pull fetches them again
  imagepusher.registry.image_cache:
    state: verified
    remove_bad: true
    cache_dir: /var/cache/imagepusher
  register: verified

# Air gap: pull and export on the connected side ...
- name: Export two images to one archive
  imagepusher.registry.image_cache:
    state: exported
    name:
      - docker.io/library/nginx:1.27
      - quay.io/prometheus/node-exporter:v1.8.2
    path: /media/usb/images.tar
    cache_dir: /var/cache/imagepusher

# ... and import and push on the other side.
- name: Import the archive into the cache of the disconnected host
  imagepusher.registry.image_cache:
    state: imported
    path: /media/usb/images.tar
    cache_dir: /var/cache/imagepusher
  register: imported

- name: Push what was imported
  imagepusher.registry.image_push:
    name: "{{ item.name }}"
    target: "registry.internal/mirror/{{ item.name | regex_replace('^[^/]+/', '') }}"
    cache_dir: /var/cache/imagepusher
  loop: "{{ imported.images }}"
"""

RETURN = r"""
cache_dir:
  description: Absolute path of the cache.
  returned: always
  type: str
images:
  description:
    - With O(state=present), the images listed.
    - With O(state=absent), the names the cache holds afterwards (a list of strings).
    - With O(state=exported), the images in the archive (C(name), C(digest), C(media_type)).
    - With O(state=imported), the images of the archive, with C(name), C(digest), C(media_type), C(action)
      (V(added), V(updated) or V(unchanged)) and C(previous_digest).
  returned: when O(state) is V(present), V(absent), V(exported) or V(imported)
  type: list
  elements: raw
  contains:
    name:
      description: The name in the cache's C(index.json).
      type: str
    digest:
      description: Digest of the image's manifest or index.
      type: str
    media_type:
      description: Its media type.
      type: str
    platforms:
      description: Platforms, C(os/architecture[/variant]) (O(state=present)).
      type: list
      elements: str
    size:
      description: Bytes of the image, unique blobs plus manifests (O(state=present)).
      type: int
    complete:
      description: Whether every manifest and blob of the image is in the cache (O(state=present)).
      type: bool
    annotations:
      description: The other annotations of its C(index.json) entry, for example where it was pulled from (O(state=present)).
      type: dict
usage:
  description: Disk usage of the cache.
  returned: when O(state=present)
  type: dict
  contains:
    blobs:
      description: Number of blobs (manifests, configs and layers).
      type: int
    blob_bytes:
      description: Their bytes.
      type: int
    partials:
      description: Partial downloads and leftover temp files.
      type: int
    partial_bytes:
      description: Their bytes.
      type: int
    total_bytes:
      description: RV(usage.blob_bytes) plus RV(usage.partial_bytes).
      type: int
    unreferenced_blobs:
      description: Blobs no name reaches, that O(state=pruned) would delete (V(null) when an image is damaged).
      type: int
    unreferenced_bytes:
      description: Their bytes.
      type: int
not_found:
  description: Names in O(name) that the cache does not hold.
  returned: when O(state) is V(present) or V(absent)
  type: list
  elements: str
removed:
  description:
    - With O(state=absent), the names removed from C(index.json).
    - With O(state=verified), the digests of the bad blobs deleted (O(remove_bad=true)); for a link where a
      directory of C(blobs/) should be, its path.
  returned: when O(state) is V(absent) or V(verified)
  type: list
  elements: str
msg:
  description:
    - What O(state=absent) did; it reminds that blobs stay until O(state=pruned).
    - With O(state=present) or O(state=absent), the names of O(name) the cache does not hold, each with the cached
      names close to it (the same repository and tag under another registry, or a similar spelling).
  returned: when O(state=absent), or O(state=present) with names not found
  type: str
  sample: "not in the cache: eco/small:v1 (did you mean 127.0.0.1:5150/eco/small:v1?)"
removed_blobs:
  description: Blobs deleted by O(state=pruned) (in check mode, that would be), each with C(digest) and C(size).
  returned: when O(state=pruned)
  type: list
  elements: dict
removed_partials:
  description: Partial downloads and leftover temp files deleted, each with C(path) (relative to the cache) and C(size).
  returned: when O(state=pruned)
  type: list
  elements: dict
bytes_freed:
  description: Bytes freed by O(state=pruned).
  returned: when O(state=pruned)
  type: int
kept_recent:
  description: Unreferenced blobs kept because they were written after the prune started or within O(older_than).
  returned: when O(state=pruned)
  type: int
partials_in_use:
  description: Partial downloads kept because a run is writing them.
  returned: when O(state=pruned)
  type: int
checked:
  description: Number of blobs hashed by O(state=verified).
  returned: when O(state=verified)
  type: int
bytes_checked:
  description: Bytes hashed.
  returned: when O(state=verified)
  type: int
bad:
  description:
    - Blobs whose content does not match their digest, with C(digest), C(actual_digest), C(size), C(path), and
      C(reason) (V(digest mismatch)).
    - Also symbolic links and other non-regular entries under C(blobs/), which are never trusted; for those
      C(actual_digest) and C(size) are V(null) and C(reason) says what the entry is (for example
      V(a symbolic link (never trusted\))); C(digest) is V(null) for a link where a directory of C(blobs/) should be.
  returned: when O(state=verified)
  type: list
  elements: dict
affected:
  description: Names of the images that use a bad blob.
  returned: when O(state=verified)
  type: list
  elements: str
incomplete:
  description:
    - Images the cache cannot serve whole (after O(remove_bad), or in check mode, as it would be), each with
      C(name), C(digest), C(missing) and C(damaged) digests. Pull them again.
  returned: when O(state=verified)
  type: list
  elements: dict
path:
  description: Absolute path of the archive.
  returned: when O(state) is V(exported) or V(imported)
  type: str
size:
  description: Size of the archive in bytes (in check mode, of the archive that would be written).
  returned: when O(state=exported)
  type: int
format:
  description: What the archive was, V(oci) (an OCI layout, including C(docker save) since Docker 25) or V(docker).
  returned: when O(state=imported)
  type: str
blobs:
  description:
    - With O(state=exported), the number of blobs (manifests, configs, layers) in the archive.
    - With O(state=pruned), the number of blobs left in the cache.
    - With O(state=imported), the config and layer blobs, each with C(digest), C(size), C(media_type) and
      C(action) (V(imported) or V(cached)).
  returned: when O(state) is V(exported), V(pruned) or V(imported)
  type: raw
blob_bytes:
  description: Bytes of the blobs left in the cache after O(state=pruned).
  returned: when O(state=pruned)
  type: int
manifests:
  description: The manifests of the imported images, each with C(digest), C(media_type), C(size) and C(action).
  returned: when O(state=imported)
  type: list
  elements: dict
bytes_imported:
  description: Blob bytes loaded into the cache (in check mode, that would be).
  returned: when O(state=imported)
  type: int
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.imagepusher.registry.plugins.module_utils import _bytecode_cache

_bytecode_cache.install()  # first: the module_utils below are then compiled once, not at every run

from ansible_collections.imagepusher.registry.plugins.module_utils import _archive
from ansible_collections.imagepusher.registry.plugins.module_utils import _archive_import
from ansible_collections.imagepusher.registry.plugins.module_utils import _cache_admin
from ansible_collections.imagepusher.registry.plugins.module_utils import _module


def present(module, cache):
    images, not_found = _cache_admin.list_images(cache, module.params["name"])
    result = {"changed": False, "images": images, "not_found": not_found, "usage": _cache_admin.disk_usage(cache)}
    if not_found:
        result["msg"] = _cache_admin.not_found_message(cache.entries() if cache.exists() else [], not_found)
    return result


def pruned(module, cache):
    older_than = None
    if module.params["older_than"] is not None:
        try:
            older_than = _cache_admin.parse_age(module.params["older_than"])
        except ValueError as exc:
            module.fail_json(msg="older_than: %s" % exc)
    return _cache_admin.prune(cache, older_than=older_than, check_mode=module.check_mode)


STATES = {
    "present": present,
    "absent": lambda module, cache: _cache_admin.remove_refs(cache, module.params["name"], check_mode=module.check_mode),
    "pruned": pruned,
    "verified": lambda module, cache: _cache_admin.verify(cache, remove_bad=module.params["remove_bad"],
                                                          check_mode=module.check_mode),
    "exported": lambda module, cache: _archive.export_images(cache, module.params["name"], module.params["path"],
                                                             check_mode=module.check_mode, force=module.params["force"]),
    "imported": lambda module, cache: _archive_import.import_archive(cache, module.params["path"], check_mode=module.check_mode),
}


def main():
    module = AnsibleModule(
        argument_spec=dict(
            state=dict(type="str", choices=sorted(STATES), default="present"),
            cache_dir=dict(type="path"),
            name=dict(type="list", elements="str"),
            path=dict(type="path"),
            older_than=dict(type="str"),
            remove_bad=dict(type="bool", default=False),
            force=dict(type="bool", default=False),
        ),
        required_if=[
            ("state", "absent", ["name"]),
            ("state", "exported", ["name", "path"]),
            ("state", "imported", ["path"]),
        ],
        supports_check_mode=True,
    )
    state = module.params["state"]
    for option, states in (("path", ("exported", "imported")), ("older_than", ("pruned",)),
                           ("remove_bad", ("verified",)), ("force", ("exported",)), ("name", ("present", "absent", "exported"))):
        value = module.params[option]
        if value not in (None, False) and state not in states:
            module.fail_json(msg="%s is not used with state=%s (only with state=%s)" % (option, state, " or ".join(states)))
    if module.params["name"] is not None and not [n for n in module.params["name"] if n]:
        module.fail_json(msg="name must list at least one image")

    def operation():
        cache = _module.make_cache(module)
        result = STATES[state](module, cache)
        result["cache_dir"] = cache.root
        return result

    _module.run(module, operation)


if __name__ == "__main__":
    main()
