#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: contributors to imagepusher.registry
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: image_pull
short_description: Pull a container image from a registry into the on-host OCI cache
version_added: 0.1.0
description:
  - Downloads an image (a single-platform manifest, or a multi-platform index with all or some of its platforms)
    from an OCI or Docker v2 registry into O(cache_dir), an OCI image layout shared by every image.
  - No container engine is needed. Blobs stream to disk with constant memory, are checked against their digest
    while they are written, and only complete, verified blobs ever enter the cache.
  - A blob the cache already holds is never downloaded again, whichever image it came with. A download that was
    interrupted (network drop, killed process) resumes from the bytes already on disk.
  - Manifests are stored as the exact bytes the registry served, so digests are preserved.
  - Idempotent by digest. When the cache already holds the complete image that the tag resolves to, the module
    reports no change after a single manifest HEAD request.
  - Push the cached image to another registry with M(imagepusher.registry.image_push).
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
    details: Resolves the digest and reads manifests (read-only requests); reports what would be downloaded; writes nothing.
  diff_mode:
    support: full
    details: Shows the digest the cache held for the reference before and after.
  idempotent:
    support: full
options:
  name:
    description:
      - The image to pull, as C([registry/]repository[:tag][@digest]).
      - Docker Hub names are normalized as Docker does, V(nginx) is C(docker.io/library/nginx:latest).
      - Without a tag or digest, the tag V(latest) is used.
    type: str
    required: true
  platforms:
    description:
      - Pull only these platforms of a multi-platform image, each C(os/architecture[/variant]), for example
        V(linux/amd64) or V(linux/arm64/v8).
      - By default every platform is pulled and the index is kept as served, so its digest is preserved.
      - With one platform, the cache names that platform's manifest, whose digest is preserved (as
        C(docker pull --platform) does). With several, the cache holds a new index that lists only them, which has
        a new digest; RV(digest_changed) is then V(true).
      - A narrowed index keeps the BuildKit attestation manifests (entries annotated
        C(vnd.docker.reference.type=attestation-manifest)) of the kept platforms; a single platform has none.
      - A narrowed pull is different content from the full image, so it is stored under a name of its own,
        the reference followed by the platforms, for example C(registry.example.com/app:v1+linux-amd64)
        (RV(cache_name)). Pulling the full image and a narrowed one of the same reference keeps both.
      - For a single-platform image, the module fails when its platform is not one of these.
      - The alias O(platform) is the name community.docker's C(docker_image_pull) uses; a single string is a
        one-item list (V(linux/arm64) is V([linux/arm64])).
    type: list
    elements: str
    aliases: [platform]
notes:
  - The cache can be read by other tools, for example C(skopeo copy oci:<cache_dir>:<reference> ...).
  - Several runs may share one cache at the same time; file locks keep it consistent and a blob that two runs
    need is downloaded once.
seealso:
  - module: imagepusher.registry.image_push
"""

EXAMPLES = r"""
- name: Pull an image with all its platforms into the default cache
  imagepusher.registry.image_pull:
    name: docker.io/library/nginx:1.27

- name: Pull only linux/amd64 from a private registry into a chosen cache
  imagepusher.registry.image_pull:
    name: registry.example.com/team/app:v1.4.2
    platforms:
      - linux/amd64
    cache_dir: /var/cache/imagepusher
    username: deploy
    password: "{{ vault_registry_password }}"
    ca_path: /etc/pki/registry-ca.pem
  register: pulled

- name: Show what was pulled
  ansible.builtin.debug:
    msg: "{{ pulled.reference }} is {{ pulled.digest }}, {{ pulled.bytes_downloaded }} bytes downloaded"

- name: Pull an exact digest (no request at all when it is already cached)
  imagepusher.registry.image_pull:
    name: quay.io/prometheus/node-exporter@sha256:4cb2b9019f1757be8482419002cb7afe028fdba35d47958829e4cfeaf6246d80
"""

RETURN = r"""
elapsed:
  description: Seconds the module ran, from its start to its result (planning included).
  returned: always
  type: float
  sample: 14.21
bytes_per_second:
  description:
    - The average rate of this run, RV(bytes_downloaded) divided by RV(elapsed). V(0) in check mode and when nothing
      was downloaded.
  returned: always
  type: int
  sample: 24117248
reference:
  description: The normalized reference the image is stored under in the cache.
  returned: always
  type: str
  sample: docker.io/library/nginx:1.27
cache_name:
  description:
    - The name of the image in the cache's C(index.json) (annotation C(org.opencontainers.image.ref.name)).
    - RV(reference), followed by the platforms when O(platforms) narrowed the image.
    - Use it as O(imagepusher.registry.image_push#module:name), or with C(skopeo ... oci:<cache_dir>:<cache_name>).
  returned: always
  type: str
  sample: docker.io/library/nginx:1.27+linux-amd64
digest:
  description: Digest of the manifest or index the cache holds for RV(cache_name).
  returned: always
  type: str
  sample: sha256:0d17b565c37bcbd895e9d92315a05c1c3c9a29f762b011a10c54a66cd53c9b31
source_digest:
  description: Digest the tag resolved to on the registry.
  returned: always
  type: str
  sample: sha256:0d17b565c37bcbd895e9d92315a05c1c3c9a29f762b011a10c54a66cd53c9b31
digest_changed:
  description:
    - Whether RV(digest) is a new digest, one the registry does not serve. V(true) only when O(platforms) narrows an
      index to several platforms, for which the cache holds a new index listing only them.
    - With one platform the cache holds that platform's manifest exactly as the registry serves it (its digest
      preserved), so this is V(false) although RV(digest) is not RV(source_digest), the index's digest.
  returned: always
  type: bool
media_type:
  description: Media type of the stored manifest or index.
  returned: always
  type: str
  sample: application/vnd.oci.image.index.v1+json
platforms:
  description: Platforms stored, C(os/architecture[/variant]).
  returned: always
  type: list
  elements: str
  sample: [linux/amd64, linux/arm64/v8]
blobs:
  description:
    - Every config and layer blob of the image, and what was done with it.
    - In check mode, what would be done.
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
      description: V(downloaded), V(resumed) (a partial download was continued) or V(cached) (already present).
      type: str
manifests:
  description: The manifests of the image (children first), each with C(digest), C(media_type), C(size) and C(action).
  returned: always
  type: list
  elements: dict
bytes_downloaded:
  description: Blob bytes downloaded by this run (in check mode, that would be downloaded).
  returned: always
  type: int
size:
  description: Total size of the stored image in bytes (unique blobs and manifests).
  returned: always
  type: int
cache_dir:
  description: Absolute path of the cache.
  returned: always
  type: str
source_location:
  description:
    - The repository the image was read from, C(registry/repository). It differs from the image's own when a
      C(registries.conf) mirror served it or its C(location) rewrote the name (see O(registries_conf)).
  returned: always
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
    - When the task fails after it already wrote to the cache, what it wrote before the failure; the task then
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

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.imagepusher.registry.plugins.module_utils import _bytecode_cache

_bytecode_cache.install()  # first: the module_utils below are then compiled once, not at every run

from ansible_collections.imagepusher.registry.plugins.module_utils import _copy
from ansible_collections.imagepusher.registry.plugins.module_utils import _module
from ansible_collections.imagepusher.registry.plugins.module_utils import _progress


def main():
    argument_spec = dict(
        name=dict(type="str", required=True),
        platforms=dict(type="list", elements="str", aliases=["platform"]),
        progress=dict(type="bool", default=True),
    )
    argument_spec.update(_module.registry_argument_spec())
    argument_spec.update(_module.cache_argument_spec())
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True)
    _module.check_requirements(module)
    _module.check_ranges(module)

    def pull_image():
        reference = _module.parse_reference(module.params["name"])
        transport = _module.make_transport(module)
        cache = _module.make_cache(module)
        events = _progress.reporter()

        def pull_from(client, location):
            pull = _copy.pull(client, location, cache, module.params["concurrency"], events=events,
                              foreign=module.params["foreign_layers"])
            return pull.run(reference, module.params["platforms"], check_mode=module.check_mode)

        return _progress.track(events, str(reference), lambda: _module.read_image(
            module, reference, transport, _module.login_for(module), pull_from))

    _module.run(module, _progress.timed(pull_image, module.check_mode))


if __name__ == "__main__":
    main()
