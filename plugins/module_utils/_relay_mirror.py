# -*- coding: utf-8 -*-
# Copyright: contributors to imagepusher.registry
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""RelayMirror: the copy registry -> registry that keeps nothing on disk (image_mirror's cache: false).

It reads and plans as Mirror does (the same HEADs decide that the target is current, the
same planner decides what the target lacks), against a RelayStore that holds nothing, so
the manifests and the config are read from the source into memory and every blob the
target lacks (and no mount brings) is planned as uploaded. Its real run sends those blobs
relayed from the source (_relay.py: hashed as they pass, the PUT only once the digest
matched) and then puts the manifests, children first, as Push does. No cache is created,
no upload session or lock is written, no name is recorded.

bytes_downloaded is what was read from the source (resumes and re-reads included); in check
mode, the size of the blobs that would be uploaded.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.imagepusher.registry.plugins.module_utils import _plan
from ansible_collections.imagepusher.registry.plugins.module_utils._changes import mark_failure
from ansible_collections.imagepusher.registry.plugins.module_utils._errors import ImagePusherError
from ansible_collections.imagepusher.registry.plugins.module_utils._mirror import Mirror


class RelayMirror(Mirror):
    fills_cache = False

    def _planned(self, job, plan):
        return {"changed": False, "bytes_downloaded": _plan.moved_bytes(plan.sends, (_plan.UPLOADED,))}

    def _move(self, job, plan):
        if job.config_raw is not None:  # read and verified while planning: it goes up from memory
            self.pull.cache.keep(job.tree.top.config.digest, job.config_raw)
        try:
            sends = self.push.finish(job.tree, plan.sends, plan.puts)
        except ImagePusherError as exc:
            raise mark_failure(exc, self.push.target.changes)
        return {"changed": False, "bytes_downloaded": self.pull.cache.bytes_read}, sends
