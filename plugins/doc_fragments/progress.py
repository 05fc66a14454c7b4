# -*- coding: utf-8 -*-
# Copyright: contributors to imagepusher.registry
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type


class ModuleDocFragment(object):
    # The progress lines the collection's action plugins show while a transfer runs.
    DOCUMENTATION = r"""
options:
  progress:
    description:
      - Show progress on the controller while the module runs, in plain C(ansible-playbook) output and in AWX
        job output alike (no terminal needed). About every 5 seconds a line with the image, the bytes done and
        the total, the percentage, the rate and the time left, and a line when an image is done (only for
        images that moved bytes). Each line starts with the host's name.
      - To do so, the module replaces a small progress file at most once a second and the collection's action
        plugin reads it about once a second; the task's result is the module's own, unchanged. Over the local
        connection without become, the module runs as any task and the action reads the file, in the task's
        temporary directory, from the controller's own process, and progress costs the task nothing measurable.
        Elsewhere (other connections, or become) the module runs as an asynchronous job on the host and the
        action reads the file there with one small shell command per second.
      - Set the environment variable E(IMAGEPUSHER_PROGRESS=false) on the controller to turn progress off for every
        task (an AWX admin's switch, or a CI run's).
      - Set the environment variable E(IMAGEPUSHER_PROGRESS_INTERVAL) on the controller to show a line every
        that many seconds instead (at least 1).
      - No progress is shown in check mode, when the task sets C(async) itself, or with V(false); the module
        then runs as any other.
    type: bool
    default: true
notes:
  - With O(progress=true) (the default), other than over the local connection without become, the task runs as an
    asynchronous job of up to one week on the host, in the directory of the C(async_dir) shell option
    (C(~/.ansible_async)); its files are removed when it ends. That job costs the task about a third of a second
    more (one more Python process on the host, the status polls).
"""
