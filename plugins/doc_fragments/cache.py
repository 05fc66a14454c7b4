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
"""
