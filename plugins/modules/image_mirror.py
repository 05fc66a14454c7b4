#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: contributors to imagepusher.registry
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: image_mirror
short_description: Mirror a list of container images from their registries to others, in one task
version_added: 0.2.0
description:
  - Mirrors each image of O(images) exactly as M(imagepusher.registry.image_push) with O(imagepusher.registry.image_push#module:source)
    does, one after the other, in one module run. Each blob the target lacks is downloaded into the cache and
    uploaded from the same buffer while it downloads; the upload is completed only once the cache has verified
    the digest. Manifests keep their exact bytes, so each target digest equals its source digest.
  - Idempotent by digest. An image whose target tag already has the source's digest costs one manifest HEAD on
    each registry (with O(images[].platforms), the source's index is read too), whether or not the cache holds it.
  - One task for the whole list. Ansible's cost per loop item (most of a second) is paid once, so a list of
    current images costs about two HEAD requests per image. The role C(imagepusher.registry.mirror_images) runs it.
  - Every entry is checked before anything is transferred. The images are then mirrored in order; the first
    failure stops the run and fails the task, naming the image, with RV(images) holding those mirrored before it.
  - The registry options (O(username), O(password), O(plain_http)) are the defaults for every target; O(source_username),
    O(source_password) and O(source_plain_http) for every source. An entry's own values override them, option by
    option (an entry may give only a password, for the module-wide user name). O(auth_file),
    the auth files and credential helpers are looked up per registry. TLS options apply to every registry.
author:
  - imagepusher.registry contributors (@imagepusher)
requirements:
  - requests
  - jsonschema
extends_documentation_fragment:
  - imagepusher.registry.registry
  - imagepusher.registry.cache
  - imagepusher.registry.attributes
attributes:
  check_mode:
    support: full
    details:
      - Resolves every image and plans what would move; nothing is written to the cache or a registry.
      - Each image is planned on its own, so blobs that an earlier entry would upload or cache are counted again
        for a later entry sharing them (the real run mounts or reuses them instead).
  diff_mode:
    support: full
    details: RV(diff) maps each target to the digest it names before and after the run.
  idempotent:
    support: full
options:
  images:
    description:
      - The images to mirror, in order.
    type: list
    elements: dict
    required: true
    suboptions:
      source:
        description:
          - The image to mirror, C([registry/]repository[:tag][@digest]) (Docker Hub names as Docker reads them,
            C(nginx) is C(docker.io/library/nginx:latest)).
        type: str
        required: true
      target:
        description:
          - Where to put it, C(registry/repository[:tag]). Without a tag, the source's tag (else C(latest)).
        type: str
        required: true
      platforms:
        description:
          - Mirror only these platforms of a multi-platform image, each C(os/architecture[/variant]); defaults to
            O(platforms). One platform mirrors that platform's manifest (its digest is the source's); several make
            a new index listing only them (a new digest).
          - Alias O(images[].platform); a single string is a one-item list.
        type: list
        elements: str
        aliases: [platform]
      source_username:
        description: User name for this entry's source registry (else O(source_username)).
        type: str
      source_password:
        description: Password or token for this entry's O(images[].source_username).
        type: str
      source_plain_http:
        description: Talk plain HTTP to this entry's source registry (else O(source_plain_http)).
        type: bool
      target_username:
        description: User name for this entry's target registry (else O(username)).
        type: str
      target_password:
        description: Password or token for this entry's O(images[].target_username).
        type: str
      target_plain_http:
        description: Talk plain HTTP to this entry's target registry (else O(plain_http)).
        type: bool
  platforms:
    description:
      - The platforms of every entry without O(images[].platforms) of its own. By default whole images (every
        platform of an index) are mirrored.
      - The alias O(platform) is the name community.docker's C(docker_image_pull) uses; a single string is a
        one-item list (V(linux/arm64) is V([linux/arm64])).
    type: list
    elements: str
    aliases: [platform]
  source_username:
    description: User name for every source registry (an entry's O(images[].source_username) overrides it).
    type: str
  source_password:
    description: Password or token for O(source_username).
    type: str
  source_plain_http:
    description:
      - Talk plain HTTP to every source registry (an entry's O(images[].source_plain_http) overrides it). Loopback
        registries need not set it.
    type: bool
    default: false
notes:
  - The options O(username), O(password) and O(plain_http) apply to the targets.
seealso:
  - module: imagepusher.registry.image_push
  - module: imagepusher.registry.image_pull
"""

EXAMPLES = r"""
- name: Mirror a list of images into a private registry in one task
  imagepusher.registry.image_mirror:
    images:
      - source: docker.io/library/nginx:1.27
        target: registry.example.com/mirror/nginx
      - source: quay.io/prometheus/node-exporter:v1.8.2
        target: registry.example.com/mirror/node-exporter
        platforms: [linux/amd64]
    username: mirror-bot
    password: "{{ vault_mirror_password }}"
    cache_dir: /var/cache/imagepusher
  register: mirrored

- name: Show what moved
  ansible.builtin.debug:
    msg: "{{ item.target }} {{ item.digest }} ({{ item.bytes_uploaded }} bytes uploaded)"
  loop: "{{ mirrored.images }}"
  loop_control:
    label: "{{ item.target }}"
"""

RETURN = r"""
images:
  description:
    - One result per entry of O(images), in order, each with the keys M(imagepusher.registry.image_push) returns for
      a one-pass mirror (C(source), C(target), C(digest), C(source_digest), C(media_type), C(platforms), C(blobs),
      C(manifests), C(bytes_downloaded), C(bytes_uploaded), C(cache_name), C(cached), C(retries),
      C(source_location)), plus C(changed).
    - C(source_location) is the repository the image was read from, which differs from C(source) when a
      C(registries.conf) mirror served it or its C(location) rewrote the name (see O(registries_conf)).
    - When an image fails, the entries mirrored before it.
  returned: always
  type: list
  elements: dict
  sample:
    - source: docker.io/library/nginx:1.27
      target: registry.example.com/mirror/nginx:1.27
      digest: sha256:0d17b565c37bcbd895e9d92315a05c1c3c9a29f762b011a10c54a66cd53c9b31
      changed: false
      bytes_downloaded: 0
      bytes_uploaded: 0
bytes_downloaded:
  description: Blob bytes downloaded from the sources, all images together (in check mode, that would be).
  returned: always
  type: int
bytes_uploaded:
  description: Blob bytes uploaded to the targets, all images together (in check mode, that would be).
  returned: always
  type: int
diff:
  description: In diff mode, the digest each target names before and after the run (C(null) when it did not exist).
  returned: when diff mode is on
  type: dict
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.imagepusher.registry.plugins.module_utils import _copy
from ansible_collections.imagepusher.registry.plugins.module_utils import _module
from ansible_collections.imagepusher.registry.plugins.module_utils._mirror_entries import settle_entries

IMAGE_OPTIONS = dict(
    source=dict(type="str", required=True),
    target=dict(type="str", required=True),
    platforms=dict(type="list", elements="str", aliases=["platform"]),
    source_username=dict(type="str"),
    source_password=dict(type="str", no_log=True),
    source_plain_http=dict(type="bool"),
    target_username=dict(type="str"),
    target_password=dict(type="str", no_log=True),
    target_plain_http=dict(type="bool"),
)


def main():
    argument_spec = dict(
        images=dict(type="list", elements="dict", required=True, options=IMAGE_OPTIONS),
        platforms=dict(type="list", elements="str", aliases=["platform"]),
        source_username=dict(type="str"),
        source_password=dict(type="str", no_log=True),
        source_plain_http=dict(type="bool", default=False),
    )
    argument_spec.update(_module.registry_argument_spec())
    argument_spec.update(_module.cache_argument_spec())
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True)
    _module.check_requirements(module)
    _module.check_ranges(module, credential_pairs=False)  # settled per image, below
    images = _module.settle_options(module, settle_entries)

    def mirror_all():
        transport = _module.make_transport(module)

        def client(reference, username, password, plain_http):
            return _module.client_for(module, reference, transport, username, password, plain_http)

        def read(reference, login, attempt):
            return _module.read_image(module, reference, transport, login, attempt)

        return _copy.mirror_images(images, client, _module.make_cache(module), module.params["concurrency"],
                                   check_mode=module.check_mode, read=read)

    _module.run(module, mirror_all)


if __name__ == "__main__":
    main()
