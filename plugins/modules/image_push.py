#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: contributors to imagepusher.registry
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: image_push
short_description: Push a cached container image (or one from any OCI layout) to a registry
version_added: 0.1.0
description:
  - Pushes an image from the on-host cache filled by M(imagepusher.registry.image_pull), or from any OCI image
    layout directory (made by skopeo, buildah, C(docker buildx --output type=oci), ...), to a registry.
  - Manifests are pushed as the exact stored bytes, so the target digest equals the source digest.
  - Idempotent by digest. When the target tag already names the same digest, the module reports no change
    after a single manifest HEAD request.
  - Otherwise each blob is checked with HEAD. A missing blob is mounted from another repository of the same
    registry when the cache knows one holds it, else uploaded streaming from disk. Then child manifests are
    pushed by digest and the top manifest or index by tag.
  - Into a repository the registry did not know (no tag; one tag list request tells), once the registry has
    honoured a mount in the task, a real run asks no blob HEAD. The request that starts an upload asks the
    registry to mount the blob from the target repository itself, so a blob already there (left by a run that
    died before its first tag) is found, reported C(exists), and never sent; a blob the cache knows another
    repository of the registry holds is mounted at once (C(mounted), also when such a run had left it there).
    A repository that has a tag gets the HEADs, which write nothing (such a mount would rewrite the repository's
    link to the blob while a manifest push of another tag may read it). Check mode always asks the HEADs.
  - The registry options (O(username), O(password), O(ca_path), ...) apply to the target registry.
author:
  - imagepusher.registry contributors (@imagepusher)
requirements:
  - jsonschema
extends_documentation_fragment:
  - imagepusher.registry.attributes
  - imagepusher.registry.registry
  - imagepusher.registry.cache
  - imagepusher.registry.progress
attributes:
  check_mode:
    support: full
    details: Only read-only requests (HEAD); reports which blobs would be uploaded or mounted and which manifests pushed.
  diff_mode:
    support: full
    details: Shows the digest of the target tag before and after.
  idempotent:
    support: full
options:
  name:
    description:
      - The image to push. In the cache, the reference it was pulled as (normalized the same way, so V(nginx)
        finds C(docker.io/library/nginx:latest)) or its digest.
      - When O(platforms) is set and the cache holds a pull narrowed to exactly those platforms (see
        RV(imagepusher.registry.image_pull#module:cache_name)), that one is pushed; otherwise the full image is narrowed.
      - With O(layout), the image's C(org.opencontainers.image.ref.name) in that layout, or its digest. May be
        omitted when the layout holds a single image.
    type: str
  target:
    description:
      - Where to push, as C(registry/repository[:tag]).
      - Without a tag, the tag of O(name) is used (V(latest) when O(name) has none).
    type: str
    required: true
  layout:
    description:
      - Push from this OCI image layout directory instead of the cache. It is only read.
    type: path
  platforms:
    description:
      - Push only these platforms of a multi-platform image, each C(os/architecture[/variant]).
      - One platform pushes that platform's manifest (digest preserved); several push a new index listing only
        them (a new digest), with the BuildKit attestation manifests of those platforms. By default the whole index
        is pushed as stored.
      - The alias O(platform) is the name community.docker's C(docker_image_pull) uses; a single string is a
        one-item list (V(linux/arm64) is V([linux/arm64])).
    type: list
    elements: str
    aliases: [platform]
  source:
    description:
      - Mirror straight from this registry image, C([registry/]repository[:tag][@digest]), instead of pushing
        an image already in the cache.
      - Pull and push overlap. Each blob the target lacks is downloaded into the cache, verified as
        M(imagepusher.registry.image_pull) would, and uploaded from the same buffer while it downloads; the upload is
        completed only once the cache has verified the digest. The cache is left holding the image (RV(cache_name)).
      - When the target tag already has the source's digest, nothing is downloaded or uploaded and the cache is not
        filled. That costs one manifest HEAD on each registry, whether or not the cache holds the image; with
        O(platforms), the source's index is read too, to learn the digest those platforms have.
      - The registry options (O(username), O(ca_path), ...) apply to the target. Credentials for the source come
        from O(source_username) and O(source_password), else from the auth files and credential helpers, looked up
        for the source registry. TLS options apply to both.
      - Mutually exclusive with O(name) and O(layout).
    type: str
  source_username:
    description:
      - User name for the O(source) registry.
    type: str
  source_password:
    description:
      - Password or token for O(source_username).
    type: str
  source_plain_http:
    description:
      - Talk plain HTTP to the O(source) registry (O(plain_http) is for the target). Loopback registries need
        not set it.
    type: bool
    default: false
  source_requests_per_second:
    description:
      - At most this many requests a second to the O(source) registry, on top of O(requests_per_second) (the lower
        of the two applies to it). For a source with a pull quota, such as Docker Hub, while the target is not limited.
    type: float
  chunk_size:
    description:
      - Upload blobs in chunks of this size instead of one streamed request per blob. A number of bytes, or
        one with a unit, V(512K), V(16MiB), V(1G) (K, M and G are binary units, with or without C(B) or C(iB)).
      - Without it, blobs go up in one request each, except that blobs over 128 MiB pushed from the cache go up in
        128 MiB chunks, so a push killed mid-blob resumes from the last acknowledged chunk where the registry keeps
        the upload session.
      - Chunks are also used when the registry asks for a minimum chunk size (C(OCI-Chunk-Min-Length)) and,
        with 16 MiB chunks, after it refused a whole blob as too large (HTTP 413).
    type: str
notes:
  - A blob is mounted instead of uploaded when the cache recorded another repository of the target registry
    holding it (because the image was pulled from there or pushed there before).
seealso:
  - module: imagepusher.registry.image_pull
"""

EXAMPLES = r"""
- name: Mirror an image into a private registry
  block:
    - name: Pull it into the cache
      imagepusher.registry.image_pull:
        name: docker.io/library/nginx:1.27

    - name: Push it, same digest, same tag
      imagepusher.registry.image_push:
        name: docker.io/library/nginx:1.27
        target: registry.example.com/mirror/nginx
        username: mirror-bot
        password: "{{ vault_mirror_password }}"
      register: pushed

- name: Push an image that skopeo or buildah wrote as an OCI layout
  imagepusher.registry.image_push:
    layout: /tmp/build/app-oci
    name: app:v2
    target: registry.example.com/team/app:v2

- name: Push only linux/amd64, in 32 MiB chunks, through a proxy that limits request size
  imagepusher.registry.image_push:
    name: registry.example.com/team/app:v2
    target: edge-registry.example.net/team/app:v2
    platforms: [linux/amd64]
    chunk_size: 32MiB

- name: Mirror straight from the source registry in one pass (downloads and uploads overlap)
  imagepusher.registry.image_push:
    source: docker.io/library/nginx:1.27
    target: registry.example.com/mirror/nginx
    source_username: "{{ hub_user }}"
    source_password: "{{ hub_token }}"
    username: mirror-bot
    password: "{{ vault_mirror_password }}"
  register: mirrored
"""

RETURN = r"""
elapsed:
  description: Seconds the module ran, from its start to its result (planning included).
  returned: always
  type: float
  sample: 14.21
bytes_per_second:
  description:
    - The average rate of this run, the blob bytes it moved (RV(bytes_downloaded) or RV(bytes_uploaded), whichever is
      more) divided by RV(elapsed). V(0) in check mode and when nothing moved.
  returned: always
  type: int
  sample: 24117248
source:
  description: The image pushed, as named in the cache or layout (with O(source), the normalized source reference).
  returned: always
  type: str
  sample: docker.io/library/nginx:1.27
target:
  description: The normalized target reference.
  returned: always
  type: str
  sample: registry.example.com/mirror/nginx:1.27
digest:
  description: Digest of the manifest or index the target tag now names (equal to the source digest).
  returned: always
  type: str
  sample: sha256:0d17b565c37bcbd895e9d92315a05c1c3c9a29f762b011a10c54a66cd53c9b31
media_type:
  description: Media type of the pushed manifest or index.
  returned: always
  type: str
platforms:
  description:
    - Platforms pushed, C(os/architecture[/variant]) (empty when the image has no config platform).
    - Also empty for a one-pass mirror (O(source)) whose target was current while the cache did not hold the image,
      since the image was not read.
  returned: always
  type: list
  elements: str
blobs:
  description:
    - Each config and layer blob and what was done with it (in check mode, what would be done).
    - Empty when the target tag already had the digest (nothing was looked at).
  returned: always
  type: list
  elements: dict
  contains:
    digest:
      description: Blob digest.
      type: str
    size:
      description: Blob size in bytes.
      type: int
    media_type:
      description: Blob media type.
      type: str
    action:
      description: V(uploaded), V(resumed) (went on from the upload session a killed run left, sending only the bytes the
        registry lacked), V(mounted) (linked from another repository, no bytes sent) or V(exists).
      type: str
manifests:
  description: Manifests pushed (children first, then the tagged one), each with C(digest), C(media_type), C(size).
  returned: always
  type: list
  elements: dict
bytes_uploaded:
  description: Blob bytes uploaded by this run (in check mode, that would be uploaded).
  returned: always
  type: int
source_digest:
  description: With O(source), the digest the source tag resolved to.
  returned: when O(source) is set
  type: str
cache_name:
  description: With O(source), the name of the image in the cache, as RV(imagepusher.registry.image_pull#module:cache_name).
  returned: when O(source) is set
  type: str
cached:
  description: With O(source), whether the cache holds the image after the run (not filled when the target was current, nor in check mode).
  returned: when O(source) is set
  type: bool
bytes_downloaded:
  description: With O(source), blob bytes downloaded from the source (in check mode, that would be downloaded).
  returned: when O(source) is set
  type: int
source_location:
  description:
    - The repository the image was read from, C(registry/repository). It differs from the image's own when a
      C(registries.conf) mirror served it or its C(location) rewrote the name (see O(registries_conf)).
  returned: when O(source) is set
  type: str
  sample: mirror.example.com/library/nginx
retries:
  description: How many requests were retried after a transient failure.
  returned: always
  type: int
rate_limits:
  description:
    - The request quota each registry announced in its last answer (Docker Hub's C(ratelimit-*) headers or the
      IETF C(RateLimit) headers), by registry name. Keys a registry does not announce are left out.
    - Also returned with a failure.
  returned: when a registry announced its quota
  type: dict
  sample: {"docker.io": {"limit": 100, "remaining": 76, "window": 21600}}
  contains:
    limit:
      description: Requests allowed per window.
      type: int
      returned: when announced
    remaining:
      description: Requests left in the current window.
      type: int
      returned: when announced
    window:
      description: The window's length in seconds.
      type: int
      returned: when announced
    reset:
      description: Seconds until the window resets.
      type: int
      returned: when announced
done:
  description:
    - When the task fails after it already wrote to the target registry (or, with O(source), the cache), what it wrote before the failure; the task then
      reports C(changed=true). Absent from a failure that changed nothing.
  returned: on failure, after something was written
  type: dict
  contains:
    blobs_downloaded:
      description: Blobs downloaded into the cache.
      type: int
    bytes_downloaded:
      description: Bytes of those blobs.
      type: int
    blobs_uploaded:
      description: Blobs uploaded to the target.
      type: int
    blobs_mounted:
      description: Blobs mounted on the target from another repository of its registry.
      type: int
    bytes_uploaded:
      description: Bytes uploaded.
      type: int
    manifests_pushed:
      description: Manifests put on the target, as C(registry/repository@digest) or C(registry/repository:tag).
      type: list
      elements: str
    manifests_stored:
      description: Manifests newly stored in the cache.
      type: int
    cache_names:
      description: Names pointed at an image in the cache's C(index.json).
      type: list
      elements: str
  sample:
    blobs_downloaded: 0
    bytes_downloaded: 0
    blobs_uploaded: 3
    blobs_mounted: 0
    bytes_uploaded: 31457280
    manifests_pushed: [registry.example.com/team/app:v1]
    manifests_stored: 0
    cache_names: []
"""

import re

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.imagepusher.registry.plugins.module_utils import _bytecode_cache

_bytecode_cache.install()  # first: the module_utils below are then compiled once, not at every run

from ansible_collections.imagepusher.registry.plugins.module_utils import _cache
from ansible_collections.imagepusher.registry.plugins.module_utils import _copy
from ansible_collections.imagepusher.registry.plugins.module_utils import _module
from ansible_collections.imagepusher.registry.plugins.module_utils import _progress
from ansible_collections.imagepusher.registry.plugins.module_utils._names import default_target_tag, find_source


SIZE_UNITS = {"": 1, "b": 1, "k": 1024, "m": 1024 ** 2, "g": 1024 ** 3}


def chunk_bytes(module):
    """chunk_size in bytes: a number, or one with K/M/G (KB, KiB: all binary, as human_to_bytes does)."""
    value = module.params["chunk_size"]
    if value is None:
        return None
    match = re.match(r"^\s*([0-9]+)\s*([kmg]?)(?:i?b)?\s*$", value, re.I)
    if not match:
        module.fail_json(msg="chunk_size %r is not a size such as 16MiB, 512K or 1048576" % value)
    size = int(match.group(1)) * SIZE_UNITS[match.group(2).lower()]
    if size < 1024:
        module.fail_json(msg="chunk_size must be at least 1024 bytes, got %d" % size)
    return size


def main():
    argument_spec = dict(
        name=dict(type="str"),
        target=dict(type="str", required=True),
        layout=dict(type="path"),
        platforms=dict(type="list", elements="str", aliases=["platform"]),
        chunk_size=dict(type="str"),
        source=dict(type="str"),
        source_username=dict(type="str"),
        source_password=dict(type="str", no_log=True),
        source_plain_http=dict(type="bool", default=False),
        source_requests_per_second=dict(type="float"),
        progress=dict(type="bool", default=True),
    )
    argument_spec.update(_module.registry_argument_spec())
    argument_spec.update(_module.cache_argument_spec())
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True,
                           required_one_of=[("name", "layout", "source")],
                           mutually_exclusive=[("name", "source"), ("layout", "source")],
                           required_by={"source_username": "source", "source_password": "source"})
    _module.check_requirements(module)
    _module.check_ranges(module)
    chunk_size = chunk_bytes(module)

    def mirror():
        source = _module.parse_reference(module.params["source"], what="source")
        target = _module.parse_target(module.params["target"], str(source), default_target_tag)
        transport = _module.make_transport(module)
        cache = _module.make_cache(module)
        events = _progress.reporter()
        target_client = _module.make_client(module, target, transport)

        def mirror_from(client, location):
            copy = _copy.mirror(client, location, target_client, target, cache, module.params["concurrency"],
                                chunk_size=chunk_size, events=events, foreign=module.params["foreign_layers"])
            return copy.run(source, module.params["platforms"], check_mode=module.check_mode)

        return _progress.track(events, "%s -> %s" % (source, target), lambda: _module.read_image(
            module, source, transport, _module.login_for(module, for_source=True), mirror_from))

    def push():
        layout = module.params["layout"]
        store = _cache.Cache(layout) if layout else _module.make_cache(module)
        source_name, entry = find_source(store, module.params["name"], layout=bool(layout),
                                         platforms=module.params["platforms"])
        target = _module.parse_target(module.params["target"], source_name, default_target_tag)
        transport = _module.make_transport(module)
        client = _module.make_client(module, target, transport)
        events = _progress.reporter()
        copy = _copy.push(client, target, store, layout=bool(layout), concurrency=module.params["concurrency"],
                          chunk_size=chunk_size, events=events, foreign=module.params["foreign_layers"])
        return _progress.track(events, "%s -> %s" % (source_name, target), lambda: copy.run(
            source_name, entry, module.params["platforms"], check_mode=module.check_mode))

    _module.run(module, _progress.timed(mirror if module.params["source"] else push, module.check_mode))


if __name__ == "__main__":
    main()
