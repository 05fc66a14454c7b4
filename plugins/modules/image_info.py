#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: contributors to imagepusher.registry
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: image_info
short_description: Describe a container image in a registry or in the on-host cache, without changing anything
version_added: 0.1.0
description:
  - Returns whether an image exists, its digest and media type, every platform with its own manifest digest,
    each platform's layers and config summary (created, architecture, os, labels, entrypoint, cmd, env, working
    directory, user, exposed ports), and the total size a pull of the whole image stores.
  - A tag or repository the registry does not know is not an error, RV(exists) is then V(false).
  - From a registry it only makes read-only requests, manifest C(HEAD) and C(GET), small config blobs (at most
    4 MiB each, verified against their digest), and the tag list when O(list_tags=true).
  - With O(source=cache) it reads the on-host cache filled by M(imagepusher.registry.image_pull) and makes no request.
author:
  - imagepusher.registry contributors (@imagepusher)
requirements:
  - jsonschema
extends_documentation_fragment:
  - imagepusher.registry.attributes
  - imagepusher.registry.registry
attributes:
  check_mode:
    support: full
    details: The module never changes anything; it runs the same in check mode.
  diff_mode:
    support: none
  idempotent:
    support: full
options:
  name:
    description:
      - The image, as C([registry/]repository[:tag][@digest]). V(nginx) means C(docker.io/library/nginx:latest).
      - With O(source=cache), also a name exactly as the cache holds it (for example one narrowed by platforms,
        C(registry.example.com/app:v1+linux-amd64)) or a digest.
    type: str
    required: true
  source:
    description:
      - Where to look, the registry O(name) is in, or the on-host cache in O(cache_dir).
      - The registry options (O(username), O(ca_path), ...) are only used with V(registry).
    type: str
    choices: [registry, cache]
    default: registry
  cache_dir:
    description:
      - The on-host cache, for O(source=cache). Defaults to C($XDG_CACHE_HOME/imagepusher), or
        C(~/.cache/imagepusher).
    type: path
  list_tags:
    description:
      - Also return RV(tags), every tag of the repository (following the registry's pagination).
      - With O(source=cache), the tags the cache holds for that repository.
    type: bool
    default: false
notes:
  - A registry may answer V(401) rather than V(404) for a repository that does not exist when the credentials do
    not cover it (Docker Hub does so for anonymous users); that is reported as an authentication error, not as
    RV(exists=false).
seealso:
  - module: imagepusher.registry.image_pull
  - module: imagepusher.registry.image_cache
"""

EXAMPLES = r"""
- name: Describe an image in a registry
  imagepusher.registry.image_info:
    name: docker.io/library/nginx:1.27
  register: nginx

- name: Show its platforms and their sizes
  ansible.builtin.debug:
    msg: "{{ nginx.platforms | map(attribute='platform') | zip(nginx.platforms | map(attribute='total_size')) | list }}"

- name: Fail early when a release tag is missing
  imagepusher.registry.image_info:
    name: registry.example.com/team/app:v1.4.2
    username: deploy
    password: "{{ vault_registry_password }}"
    list_tags: true
  register: app
  failed_when: not app.exists

- name: Look at what the cache holds for an image (no network)
  imagepusher.registry.image_info:
    name: registry.example.com/team/app:v1.4.2
    source: cache
    cache_dir: /var/cache/imagepusher
  register: cached

- name: The entrypoint and exposed ports of a single-platform image
  ansible.builtin.debug:
    msg: "{{ cached.config.entrypoint }} {{ cached.config.exposed_ports }}"
  when: cached.exists and cached.config
"""

RETURN = r"""
exists:
  description: Whether the image exists (in the registry, or in the cache for O(source=cache)).
  returned: always
  type: bool
reference:
  description: The normalized reference (or, for O(source=cache), the name the cache holds the image under).
  returned: always
  type: str
  sample: docker.io/library/nginx:1.27
source:
  description: Where the image was looked up, V(registry) or V(cache).
  returned: always
  type: str
digest:
  description: Digest of the manifest or index the reference resolves to. V(null) when RV(exists=false).
  returned: always
  type: str
  sample: sha256:0d17b565c37bcbd895e9d92315a05c1c3c9a29f762b011a10c54a66cd53c9b31
media_type:
  description: Media type of that manifest or index.
  returned: always
  type: str
  sample: application/vnd.oci.image.index.v1+json
manifest_size:
  description: Size in bytes of that manifest or index.
  returned: always
  type: int
annotations:
  description: Annotations of that manifest or index.
  returned: always
  type: dict
total_size:
  description:
    - Bytes a pull of the whole image stores, unique config and layer blobs plus every manifest (the same figure
      as RV(imagepusher.registry.image_pull#module:size)). V(null) when RV(exists=false).
  returned: always
  type: int
platforms:
  description:
    - One entry per platform. For an index, each listed platform (attestations and other entries without a real
      platform are left out); for a single-platform image, one entry for the image itself.
  returned: always
  type: list
  elements: dict
  contains:
    platform:
      description: C(os/architecture[/variant]), from the index, or from the config of a single-platform image.
      type: str
      sample: linux/arm64/v8
    digest:
      description: Digest of that platform's own manifest.
      type: str
    media_type:
      description: Media type of that manifest.
      type: str
    size:
      description: Size of that manifest in bytes.
      type: int
    layers:
      description: The layers, in order, each with C(digest), C(size) and C(media_type).
      type: list
      elements: dict
    config_digest:
      description: Digest of the config blob.
      type: str
    config:
      description: Summary of the config (see RV(config)); V(null) when the config is not an image config or too large.
      type: dict
    total_size:
      description: Bytes of this platform, its manifest, config and layers.
      type: int
layers:
  description: For a single-platform image, its layers (C(digest), C(size), C(media_type)); empty for an index.
  returned: always
  type: list
  elements: dict
config:
  description:
    - For a single-platform image, a summary of its config; V(null) for an index (see each of RV(platforms)).
  returned: always
  type: dict
  contains:
    created:
      description: Creation time, as the config states it.
      type: str
    author:
      description: Author.
      type: str
    architecture:
      description: CPU architecture.
      type: str
    os:
      description: Operating system.
      type: str
    variant:
      description: CPU variant.
      type: str
    labels:
      description: Labels.
      type: dict
    entrypoint:
      description: Entrypoint.
      type: list
      elements: str
    cmd:
      description: Default command.
      type: list
      elements: str
    env:
      description: Environment, C(NAME=value) strings.
      type: list
      elements: str
    working_dir:
      description: Working directory.
      type: str
    user:
      description: User.
      type: str
    exposed_ports:
      description: Exposed ports, for example C(80/tcp).
      type: list
      elements: str
    volumes:
      description: Volumes.
      type: list
      elements: str
    stop_signal:
      description: Stop signal.
      type: str
tags:
  description: The repository's tags, sorted. Empty when the repository does not exist.
  returned: when O(list_tags=true)
  type: list
  elements: str
source_location:
  description:
    - The repository the image was read from, C(registry/repository). It differs from the image's own when a
      C(registries.conf) mirror served it or its C(location) rewrote the name (see O(registries_conf)).
  returned: when O(source=registry)
  type: str
  sample: mirror.example.com/library/nginx
cache_name:
  description: The name the cache holds the image under, V(null) when it holds none.
  returned: when O(source=cache)
  type: str
msg:
  description:
    - That the cache does not hold O(name), with the cached names close to it (the same repository and tag under
      another registry, or a similar spelling).
  returned: when O(source=cache) and RV(exists=false)
  type: str
  sample: image eco/small:v1 is not in the cache /home/me/.cache/imagepusher (did you mean 127.0.0.1:5150/eco/small:v1?)
cache_dir:
  description: Absolute path of the cache.
  returned: when O(source=cache)
  type: str
complete:
  description: Whether the cache holds every manifest and blob of the image.
  returned: when O(source=cache) and RV(exists=true)
  type: bool
missing:
  description: Digests of the manifests and blobs of the image the cache lacks.
  returned: when O(source=cache) and RV(exists=true)
  type: list
  elements: str
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
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.imagepusher.registry.plugins.module_utils import _bytecode_cache

_bytecode_cache.install()  # first: the module_utils below are then compiled once, not at every run

from ansible_collections.imagepusher.registry.plugins.module_utils import _inspect
from ansible_collections.imagepusher.registry.plugins.module_utils import _module


def main():
    argument_spec = dict(
        name=dict(type="str", required=True),
        source=dict(type="str", choices=["registry", "cache"], default="registry"),
        cache_dir=dict(type="path"),
        list_tags=dict(type="bool", default=False),
    )
    argument_spec.update(_module.registry_argument_spec())
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True)
    _module.check_requirements(module)
    _module.check_ranges(module)

    def info():
        params = module.params
        if params["source"] == "cache":
            result = _inspect.inspect_cache(_module.make_cache(module), params["name"], list_tags=params["list_tags"])
        else:
            reference = _module.parse_reference(params["name"])
            result = _module.read_image(
                module, reference, _module.make_transport(module), _module.login_for(module),
                lambda client, location: _inspect.inspect_registry(client, location, list_tags=params["list_tags"]),
                served=lambda described: described["exists"])
            result["reference"] = str(reference)  # the name the task gave, wherever registries.conf read it
        result["changed"] = False
        return result

    _module.run(module, info)


if __name__ == "__main__":
    main()
