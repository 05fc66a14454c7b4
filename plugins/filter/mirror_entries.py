# -*- coding: utf-8 -*-
# Copyright: contributors to imagepusher.registry
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
name: mirror_entries
short_description: The entries of a list of images to mirror, without the keys set to null
version_added: 0.2.0
description:
  - Takes a list of M(imagepusher.registry.image_mirror) entries (dictionaries such as the role's
    C(mirror_images_list)) and returns them in the same order, each without the keys whose value is null, so
    that a key set to null means "not set" and the module-wide default applies, as in the module.
  - The role C(imagepusher.registry.mirror_images) passes its list through it. Written in Python because the
    same in Jinja (C(map('dict2items') | map('rejectattr', 'value', 'none') | map('items2dict'))) took about
    1.3 seconds of the controller's CPU per 300 entries.
positional: _input
options:
  _input:
    description: The entries, each a dictionary.
    type: list
    elements: dict
    required: true
"""

EXAMPLES = r"""
- name: Entries of which some leave a key to the module-wide default
  ansible.builtin.debug:
    msg: "{{ [{'source': 'registry.example.com/team/app:1.0', 'target': 'mirror.example.com/team/app:1.0',
              'platforms': none}] | imagepusher.registry.mirror_entries }}"
  # [{"source": "registry.example.com/team/app:1.0", "target": "mirror.example.com/team/app:1.0"}]
"""

RETURN = r"""
_value:
  description: The entries, in the order of the input, each without the keys whose value is null.
  type: list
  elements: dict
"""

from ansible.errors import AnsibleFilterError


def mirror_entries(entries):
    """The entries without their keys set to null (null means "not set", as in the module)."""
    if not isinstance(entries, (list, tuple)):
        raise AnsibleFilterError("mirror_entries expects a list of image entries, got %s" % type(entries).__name__)
    cleaned = []
    for number, entry in enumerate(entries):
        if not isinstance(entry, dict):
            raise AnsibleFilterError("mirror_entries expects each entry to be a dict, got %s at index %d"
                                     % (type(entry).__name__, number))
        cleaned.append(dict((key, value) for key, value in entry.items() if value is not None))
    return cleaned


class FilterModule(object):
    def filters(self):
        return {"mirror_entries": mirror_entries}
