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
    An image the target lacks and the cache has no copy of is read from the source by GET at once, without a HEAD first.
  - One task for the whole list. Ansible's cost per loop item (most of a second) is paid once, so a list of
    current images costs about two HEAD requests per image. The role C(imagepusher.registry.mirror_images) runs it.
  - An entry with O(images[].tags) is a sync. It mirrors each tag of its source repository that the rules select,
    to the same tag of its target repository, as if each were an entry of its own at that place in the list.
  - Every entry is checked before anything is transferred. The images are then mirrored, up to O(image_concurrency)
    at a time, started in the order of the list; RV(images) keeps that order. The first failure (in list order)
    fails the task with a message that starts with C(images[N] (source -> target)); no image starts after it, those
    already running finish. RV(images) then holds the images mirrored before the failing entry, and the failure's
    C(image_states) says, for every entry, whether it was C(done), C(failed) (with its C(msg)) or C(not started).
  - With O(cache=false) nothing is kept on disk. Each blob goes from the source registry to the target through
    memory, verified on the way (see O(cache)).
  - The images of one task share their blobs. O(concurrency) bounds the blob transfers of the whole task, not of
    each image. A blob several images need is downloaded once (the others wait for it and find it in the cache)
    and uploaded once per target registry; the other repositories of that registry mount it from the first
    (cross-repository mount), falling back to an upload where the registry refuses the mount. Which of the images
    sharing a blob reports it downloaded and uploaded (the others report it cached and mounted) depends on which
    got to it first; the totals do not. With O(image_concurrency=1) it is always the first of them in the list.
  - A blob an earlier image of the task put into the same target repository is known to be there without a
    request. Into a repository the registry did not know when the task first looked (no tag; one tag list
    request per repository tells), once the registry has honoured a mount in the task, a real run asks no blob
    HEAD. The request that starts an upload asks the registry to mount the blob from the target repository
    itself, so a blob already there (left by a run that died before its first tag) is found, reported C(exists),
    and never sent; a blob another repository of the registry holds is mounted at once (C(mounted), also when
    such a run had left it there). A repository that has a tag gets the HEADs, which write nothing (such a
    mount would rewrite the repository's link to the blob while a manifest push of another tag, image or host
    may read it). Check mode always asks the HEADs.
  - One HTTP session, one TLS context and one connection pool per registry serve the whole task; a loopback
    registry's scheme (HTTPS or plain HTTP) is probed once, and each registry authenticates once per scope.
  - The registry options (O(username), O(password), O(plain_http)) are the defaults for every target; O(source_username),
    O(source_password) and O(source_plain_http) for every source. An entry's own values override them, option by
    option (an entry may give only a password, for the module-wide user name). O(auth_file),
    the auth files and credential helpers are looked up per registry. TLS options apply to every registry.
author:
  - imagepusher.registry contributors (@imagepusher)
requirements:
  - jsonschema
extends_documentation_fragment:
  - imagepusher.registry.registry
  - imagepusher.registry.cache
  - imagepusher.registry.progress
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
            a new index listing only them (a new digest) and the BuildKit attestation manifests (index entries
            annotated C(vnd.docker.reference.type=attestation-manifest)) whose C(vnd.docker.reference.digest) is one
            of them; an index narrowed to every platform it has is kept as it is.
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
      tags:
        description:
          - Sync by tag rules. O(images[].source) and O(images[].target) are then repositories (no tag, no digest);
            the source's tags are listed (following C(Link) pages) and each tag the rules select is mirrored to the
            same tag of the target, with the entry's other settings. An empty dict selects every tag.
          - A tag is selected when it passes every rule given. Selected tags are mirrored highest version first
            (C(v1.10.0) before C(v1.2.0); tags naming equal versions, such as C(1.2) and C(v1.2.0), by name), then
            the tags that are not versions, by name.
          - The rules are checked before anything is transferred; a bad one fails the task with a message naming it,
            such as C(images[2].tags.semver).
          - An entry whose rules select no tag mirrors nothing and the task warns, naming the entry.
          - Tags are read as versions with or without a leading C(v), a missing minor or patch being 0 (C(1.4) is
            1.4.0); C(latest), C(foo) or C(1.2.3.4) are not versions.
        type: dict
        suboptions:
          include:
            description:
              - Regular expressions (Python C(re)); a tag is kept when one of them matches the WHOLE tag
                (C(v1.*), not C(v1)). By default every tag.
            type: list
            elements: str
          exclude:
            description: Regular expressions; a tag is dropped when one of them matches the whole tag.
            type: list
            elements: str
          semver:
            description:
              - A version range, with npm's (node-semver) rules. Comparators separated by spaces must all hold, sets
                joined by C(||) are alternatives. C(>=1.2 <2), C(~1.4) (1.4.x), C(^2) (2.x), C(^0.2) (0.2.x), C(=1.2.3),
                C(1.2) (1.2.x), C(1.x), C(*), C(>), C(>=), C(<), C(<=), C(1.2 - 1.5).
              - Tags that are not versions are dropped. A pre-release (C(1.11.0-rc1)) matches only when a comparator
                names a pre-release of the same version (C(>=1.11.0-rc1)), or with O(images[].tags.prerelease=true).
            type: str
          latest:
            description:
              - Keep only the N highest versions of the tags selected by the other rules (each tag counts, so C(1.2)
                and C(v1.2.0) are two). Tags that are not versions are dropped; pre-releases too, unless
                O(images[].tags.prerelease=true).
            type: int
          prerelease:
            description:
              - V(true) selects pre-release versions wherever a version is read (O(images[].tags.semver),
                O(images[].tags.latest)). V(false) drops every pre-release version, with or without those rules.
              - Unset, O(images[].tags.semver) follows node-semver, O(images[].tags.latest) drops pre-releases, and
                O(images[].tags.include)/O(images[].tags.exclude) alone keep them.
            type: bool
      referrers:
        description: Also copy what is attached to this entry's image (else O(referrers)); see O(referrers).
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
  referrers:
    description:
      - Also copy what is attached to each image (an entry's O(images[].referrers) overrides it) - signatures, SBOMs,
        attestations - from the source repository to the target repository.
      - Found for the digest the target tag gets, through the OCI 1.1 Referrers API
        (C(GET /v2/<name>/referrers/<digest>)) where the source has it, else through the tag-schema index tagged
        C(sha256-<hex>); and the cosign tags C(sha256-<hex>.sig), C(.att) and C(.sbom) in either case. Referrers of
        referrers are copied too, down to 3 levels below the image, at most 1000 per image.
      - Only the digest the target tag gets is looked up, not the platform manifests of an index (cosign signs the
        index digest; BuildKit attestations are entries of the index itself). With several O(platforms) the target
        gets a new index, to which nothing refers.
      - Each referrer is copied by digest (a cosign tag by tag), its bytes, digest and C(subject) unchanged. On a
        target without the Referrers API (Distribution 2.8 has none) the tag-schema index C(sha256-<hex>) is
        written, or merged into the one there (nothing it lists is dropped; it is written only when something was
        added). A tag of that name holding something other than an index is left alone.
      - 'Cost: every run, a current image included, reads the referrer list of the image and of each referrer on the
        source (one request, two without the API) and on the target (to merge its index), HEADs the three cosign
        tags of each, and HEADs each referrer on the target: about fifteen requests for an image with one
        signature (a dozen more than without O(referrers)).'
    type: bool
    default: false
  cache:
    description:
      - V(false) mirrors without keeping anything on disk, for images larger than the host's disk. Each blob the
        target lacks (and cannot mount) is read from the source registry while it is uploaded to the target, through
        one 1 MiB buffer per blob being moved, and hashed as it passes. The upload is completed (the C(PUT) naming the
        digest) only once the bytes relayed match the descriptor's digest and size. On a mismatch the upload
        session is deleted and the task fails naming the blob; the target tag is not set. Manifests and configs are
        read into memory (bounded by the usual limits) and verified against their digests.
      - Nothing is written on the managed host and O(cache_dir) is ignored (no directory is created or read). No blob,
        manifest, C(index.json) name, upload session or lock is kept, so C(cached) is V(false) in RV(images) and
        C(cache_name) names what the image would be called in a cache. (Ansible's own files aside, such as the
        small progress file that O(progress) has the module write, removed when the task ends.)
      - What it costs. A source body that drops is resumed with a C(Range) request, and an upload that drops goes on
        from the piece the target acknowledged (blobs above 128 MiB go up in 128 MiB pieces), within this run and as
        far as the target keeps upload sessions (Distribution drops a session whose request was cut, so there the blob
        starts over). A killed run leaves nothing to resume, the next run sends each missing blob from its first byte.
        A blob the target holds in another repository is mounted only from the repositories of the same task (a
        cache remembers where it saw a blob; this keeps nothing). A later M(imagepusher.registry.image_push) from the
        cache needs an M(imagepusher.registry.image_pull) first.
      - Idempotence, check mode and diff mode are as with the cache. C(bytes_downloaded) is what was read from the
        source (in check mode, the bytes that would be uploaded). A blob several images share is read once per target
        registry. The first image uploads it, the other repositories of that registry mount it.
    type: bool
    default: true
  source_username:
    description: User name for every source registry (an entry's O(images[].source_username) overrides it).
    type: str
  source_password:
    description: Password or token for O(source_username).
    type: str
  image_concurrency:
    description:
      - How many images are mirrored at the same time. Their blob transfers together stay within O(concurrency).
      - V(1) mirrors the images one after the other.
    type: int
    default: 4
  source_plain_http:
    description:
      - Talk plain HTTP to every source registry (an entry's O(images[].source_plain_http) overrides it). Loopback
        registries need not set it.
    type: bool
    default: false
  source_requests_per_second:
    description:
      - At most this many requests a second to each source registry, on top of O(requests_per_second) (the lower of
        the two applies to it). For a source with a pull quota, such as Docker Hub, while the targets are not limited.
    type: float
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
      - source: ghcr.io/example/signed-app:v3
        target: registry.example.com/mirror/signed-app
        referrers: true  # with its signatures, SBOMs and attestations
    username: mirror-bot
    password: "{{ vault_mirror_password }}"
    cache_dir: /var/cache/imagepusher
  register: mirrored

- name: Sync every 1.x release and the two newest versions of a repository
  imagepusher.registry.image_mirror:
    images:
      - source: ghcr.io/example/app
        target: registry.example.com/mirror/app
        tags:
          semver: ">=1.0 <2"
          exclude: ['.*-debug']
      - source: quay.io/example/tool
        target: registry.example.com/mirror/tool
        tags:
          latest: 2
  register: synced

- name: Show what moved
  ansible.builtin.debug:
    msg: "{{ item.target }} {{ item.digest }} ({{ item.bytes_uploaded }} bytes uploaded)"
  loop: "{{ mirrored.images }}"
  loop_control:
    label: "{{ item.target }}"
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
images:
  description:
    - One result per entry of O(images), in order, each with the keys M(imagepusher.registry.image_push) returns for
      a one-pass mirror (C(source), C(target), C(digest), C(source_digest), C(media_type), C(platforms), C(blobs),
      C(manifests), C(bytes_downloaded), C(bytes_uploaded), C(cache_name), C(cached), C(retries),
      C(source_location)), plus C(changed)
      and C(entry).
    - An entry with O(images[].tags) has one result per selected tag, in the order the rules give (none when they
      select nothing). In check mode, these are the tags that would be mirrored.
    - With O(referrers), C(referrers) too (see RV(images[].referrers)); the bytes of the referrers are counted in the
      image's C(bytes_downloaded) and C(bytes_uploaded), and C(changed) is true when one of them was copied.
    - C(source_location) is the repository the image was read from, which differs from C(source) when a
      C(registries.conf) mirror served it or its C(location) rewrote the name (see O(registries_conf)).
    - When an image fails, the entries mirrored before it (the failure's C(image_states) says what each entry did).
  returned: always
  type: list
  elements: dict
  sample:
    - source: docker.io/library/nginx:1.27
      target: registry.example.com/mirror/nginx:1.27
      digest: sha256:0d17b565c37bcbd895e9d92315a05c1c3c9a29f762b011a10c54a66cd53c9b31
      changed: false
      entry: 0
      bytes_downloaded: 0
      bytes_uploaded: 0
  contains:
    entry:
      description: The index in O(images) of the entry this image came from (several results share it for a sync entry).
      type: int
      returned: always
    referrers:
      description:
        - What is attached to the image, found and copied (in check mode, that would be); only with O(referrers).
      returned: when O(referrers) or O(images[].referrers) is true for the entry
      type: list
      elements: dict
      contains:
        digest:
          description: The referrer's manifest digest (the same on source and target).
          type: str
        media_type:
          description: The referrer's manifest media type.
          type: str
        artifact_type:
          description: Its artifact type as the source lists it (C(null) for a cosign tag).
          type: str
        subject:
          description: The digest it is attached to (the image's, or another referrer's).
          type: str
        found:
          description: How it was found.
          type: str
          choices: [referrers-api, tag-schema, cosign-tag]
        tag:
          description: The cosign tag it was copied under, else C(null).
          type: str
        changed:
          description: It was copied to the target, or added to the target's tag-schema index, in this run.
          type: bool
      sample:
        - digest: sha256:5d3f1a2d6b2c0f8a1b6c5f0e3a7d9b4c2e1f0a9b8c7d6e5f4a3b2c1d0e9f8a7b
          media_type: application/vnd.oci.image.manifest.v1+json
          artifact_type: application/vnd.dev.sigstore.bundle.v0.3+json
          subject: sha256:0d17b565c37bcbd895e9d92315a05c1c3c9a29f762b011a10c54a66cd53c9b31
          found: tag-schema
          tag: null
          changed: true
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
    - When the task fails after it already wrote to a target registry or the cache, what it wrote before the failure; the task then
      reports C(changed=true). Absent from a failure that changed nothing.
    - It covers the image that failed; the images mirrored before it are in RV(images).
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
from ansible_collections.imagepusher.registry.plugins.module_utils import _sync
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
    tags=dict(type="dict", options=dict(
        include=dict(type="list", elements="str"),
        exclude=dict(type="list", elements="str"),
        semver=dict(type="str"),
        latest=dict(type="int"),
        prerelease=dict(type="bool"),
    )),
    referrers=dict(type="bool"),
)


def main():
    argument_spec = dict(
        images=dict(type="list", elements="dict", required=True, options=IMAGE_OPTIONS),
        platforms=dict(type="list", elements="str", aliases=["platform"]),
        source_username=dict(type="str"),
        source_password=dict(type="str", no_log=True),
        source_plain_http=dict(type="bool", default=False),
        source_requests_per_second=dict(type="float"),
        referrers=dict(type="bool", default=False),
        image_concurrency=dict(type="int", default=4),
        progress=dict(type="bool", default=True),
        cache=dict(type="bool", default=True),
    )
    argument_spec.update(_module.registry_argument_spec())
    argument_spec.update(_module.cache_argument_spec())
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True)
    _module.check_requirements(module)
    _module.check_ranges(module, credential_pairs=False)  # settled per image, below
    if not 1 <= module.params["image_concurrency"] <= _module.MAX_CONCURRENCY:
        module.fail_json(msg="image_concurrency must be between 1 and %d, got %d"
                         % (_module.MAX_CONCURRENCY, module.params["image_concurrency"]))
    images = _module.settle_options(module, settle_entries)

    def mirror_all():
        transport = _module.make_transport(module)
        _module.limit_rates(module, images, transport)
        client = _module.make_clients(module, transport)

        def list_tags(source, image):
            return client(source, image["source_username"], image["source_password"],
                          image["source_plain_http"]).list_tags(source.repository)

        def read(reference, login, attempt):
            return _module.read_image(module, reference, transport, login, attempt, clients=client.shared)

        def mirror(expanded):
            # cache: false relays every blob and touches no directory (cache_dir is not even checked).
            cache = _module.make_cache(module) if module.params["cache"] else None
            return _copy.mirror_images(expanded, client, cache, module.params["concurrency"],
                                       check_mode=module.check_mode, events=_progress.reporter(),
                                       image_concurrency=module.params["image_concurrency"],
                                       foreign=module.params["foreign_layers"], read=read)

        return _sync.mirror_expanded(images, list_tags, mirror, module.warn)

    _module.run(module, _progress.timed(mirror_all, module.check_mode))


if __name__ == "__main__":
    main()
