# -*- coding: utf-8 -*-
# Copyright: contributors to imagepusher.registry
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""index.json of the cache: its text parsed and written, each entry encoded once per process.

The file is read and rewritten whole for every image a task names (a read to find the name, a read
and a rewrite to set it), so over a fleet the parsing and encoding grew with the cache: a cold
task over 300 images spent a tenth of its CPU on it. In one process, the last text read or written
at a path is kept with its entries and their encodings:

- a read whose bytes are that very text (compared byte for byte: never a file's name, size or
  time) is not parsed again; any other text is parsed, and becomes the one kept;
- a write encodes only the entries it adds, and the text it wrote becomes the one kept.

The bytes are those json.dumps(sort_keys, no spaces) gives for the whole index, so a file written
here is the file written before, and anything else (another process, a user's editor) is read as
it is. Entries come back as copies: what a caller does with them never changes what is kept.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import threading

from ansible_collections.imagepusher.registry.plugins.module_utils import _media_types
from ansible_collections.imagepusher.registry.plugins.module_utils._errors import CacheError

REF_NAME = "org.opencontainers.image.ref.name"

# The index's keys after "manifests", in sort_keys order: one line, as _encode_entry encodes each entry.
_HEAD = b'{"manifests":['
_TAIL = ('],"mediaType":%s,"schemaVersion":2}\n' % json.dumps(_media_types.OCI_INDEX)).encode("utf-8")

_KEPT = {}  # index.json path -> Index: the last text this process read or wrote there
_GUARD = threading.Lock()


class Index:
    """One text of index.json: its bytes, and its entries, each with its name and (once needed) its encoding."""

    def __init__(self, raw, entries, encodings=None, names=None):
        self.raw = raw
        self._entries = entries
        self._names = names if names is not None else [ref_name(entry) or "" for entry in entries]
        self._encodings = encodings if encodings is not None else [None] * len(entries)  # filled as needed
        self._positions = None  # name -> its first position, built on the first find()

    def entries(self):
        """Copies of the entries (a caller may change them)."""
        return [json.loads(self._encoding(n)) for n in range(len(self._entries))]

    def find(self, name):
        """A copy of the entry named `name`, or None."""
        if self._positions is None:
            positions = {}
            for number, found in enumerate(self._names):
                positions.setdefault(found, number)
            self._positions = positions
        number = self._positions.get(name)
        return None if number is None else json.loads(self._encoding(number))

    def with_entry(self, name, entry):
        """The Index with `name` pointing at `entry` (any previous one replaced), or None when it already does."""
        encoded = _encode_entry(entry)
        named = [n for n, found in enumerate(self._names) if found == name]
        if len(named) == 1 and self._encoding(named[0]) == encoded:
            return None
        others = [n for n, found in enumerate(self._names) if found != name]
        rows = [(self._names[n], self._entries[n], self._encoding(n)) for n in others]
        rows.append((name, json.loads(encoded), encoded))
        return self._sorted(rows)

    def without(self, name):
        """The Index without `name`, or None when it has no such entry."""
        rows = [(found, self._entries[n], self._encoding(n)) for n, found in enumerate(self._names) if found != name]
        if len(rows) == len(self._entries):
            return None
        return self._sorted(rows)

    @staticmethod
    def _sorted(rows):
        rows.sort(key=lambda row: row[0])  # stable: entries without a name keep their order
        encodings = [row[2] for row in rows]
        return Index(_HEAD + b",".join(encodings) + _TAIL, [row[1] for row in rows], encodings,
                     [row[0] for row in rows])

    def _encoding(self, number):
        if self._encodings[number] is None:
            self._encodings[number] = _encode_entry(self._entries[number])
        return self._encodings[number]


def ref_name(entry):
    """The ref name annotation of an index.json entry, or None."""
    return (entry.get("annotations") or {}).get(REF_NAME)


def dump(entries):
    """The bytes of index.json listing `entries` (in the order given)."""
    return _HEAD + b",".join(_encode_entry(entry) for entry in entries) + _TAIL


def _encode_entry(entry):
    # One line, no spaces: with `indent`, json encodes in pure Python.
    return json.dumps(entry, sort_keys=True, separators=(",", ":")).encode("utf-8")


def parse(path, raw):
    """The Index of the text `raw` read at `path`; CacheError when it is not an image index."""
    with _GUARD:
        kept = _KEPT.get(path)
    if kept is not None and kept.raw == raw:
        return kept
    try:
        data = json.loads(raw.decode("utf-8"))
    except (ValueError, UnicodeDecodeError):
        raise CacheError("%s is not valid JSON: the cache is damaged" % path, path=path)
    manifests = data.get("manifests") if isinstance(data, dict) else None
    if not isinstance(manifests, list) or not all(isinstance(m, dict) for m in manifests):
        raise CacheError("%s is not an OCI image index (a JSON object whose 'manifests' is a list of objects): "
                         "the cache is damaged; it is left as it is: fix it or move it away" % path, path=path)
    index = Index(raw, manifests)
    keep(path, index)
    return index


def keep(path, index):
    """Remember `index` as the last text read or written at `path`."""
    with _GUARD:
        _KEPT[path] = index
