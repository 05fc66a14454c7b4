# -*- coding: utf-8 -*-
# Copyright: contributors to imagepusher.registry
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Runs image_mirror with progress lines while it transfers (see plugin_utils/_progress_action.py)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.imagepusher.registry.plugins.plugin_utils._progress_action import ProgressAction


class ActionModule(ProgressAction):
    pass
