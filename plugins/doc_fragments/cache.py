# -*- coding: utf-8 -*-
# Copyright: contributors to imagepusher.registry
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type


class ModuleDocFragment(object):
    # Options for the on-host image cache.
    DOCUMENTATION = r"""
options:
  cache_dir:
    description:
      - The on-host image cache, an OCI image layout shared by every image
        (C(oci-layout), C(index.json), C(blobs/sha256/...)).
      - Images are named in C(index.json) by their full normalized reference, for example
        C(docker.io/library/nginx:1.27), so C(skopeo copy oci:<cache_dir>:<reference> ...) can read them.
      - Defaults to C($XDG_CACHE_HOME/imagepusher), or C(~/.cache/imagepusher) on the managed host.
    type: path
  concurrency:
    description:
      - How many blobs are transferred at the same time.
      - When mirroring (O(imagepusher.registry.image_push#module:source) or M(imagepusher.registry.image_mirror)),
        this many blobs download at once, each streaming into its upload; an upload the target is still
        completing after its download ended no longer holds a place.
    type: int
    default: 4
  foreign_layers:
    description:
      - What to do with a foreign (non-distributable) layer that names C(urls), media type
        C(application/vnd.oci.image.layer.nondistributable.v1.tar) (C(+gzip), C(+zstd)) or
        C(application/vnd.docker.image.rootfs.foreign.diff.tar.gzip), such as a Windows base layer.
      - V(skip) (as skopeo and crane do) neither reads it from the source registry nor uploads it. The manifest is
        copied as it is, its digest preserved, and whoever runs the image fetches the layer from its C(urls). The cache
        holds the image complete without it. A target registry must accept manifests naming C(urls) (in Distribution,
        C(validation.manifests.urls.allow)).
      - V(fetch) downloads it from its first C(http) or C(https) URL (no registry credential is sent there) into the
        cache, streamed and verified against its digest and size, and uploads it like any other blob. A push then
        needs it in the cache.
    type: str
    choices: [skip, fetch]
    default: skip
"""
