# -*- coding: utf-8 -*-
# Copyright: contributors to imagepusher.registry
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""http.client's response, with its header block read without the email package.

http.client hands every response's header block to email's FeedParser, about 0.2 ms of CPU per
response on the bench machine: an eighth of the module's CPU in a cold fleet (2,000 responses for
300 small images). FastResponse reads the header lines itself and builds the same HTTPMessage,
each (name, value) as email's compat32 policy stores it:

- the value starts after the colon and its leading spaces and tabs, keeps a folded line's
  continuation lines as they came, and loses the final line break;
- lines end at CRLF, CR or LF, and the block ends at the first line that is neither a header
  nor a continuation, as with FeedParser (which reads that line and the rest as a body).

Then it sets what HTTPResponse.begin() sets (status, version, chunked, length, will_close), by
the same rules. The limits are http.client's: 64 KiB per line, 100 headers. A Python whose
HTTPResponse lacks the two private methods used here (_read_status, _check_close) gets the
stock begin().
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import http.client as http_client
import re

MAX_LINE = 65536  # http.client's _MAXLINE
MAX_HEADERS = 100  # http.client's _MAXHEADERS
_HEADER = re.compile(r"[\041-\071\073-\176]*:")  # FeedParser's header line: a name of printable characters, a colon
_LINE_END = re.compile(r"(\r\n|\r|\n)")
_SUPPORTED = all(hasattr(http_client.HTTPResponse, name) for name in ("_read_status", "_check_close"))


class FastResponse(http_client.HTTPResponse):
    def begin(self):
        if self.headers is not None:
            return  # already started
        if not _SUPPORTED:
            super(FastResponse, self).begin()
            return
        while True:
            version, status, reason = self._read_status()
            if status != http_client.CONTINUE:
                break
            header_lines(self.fp)  # a 100 Continue's headers are skipped
        self.code = self.status = status
        self.reason = reason.strip()
        if version in ("HTTP/1.0", "HTTP/0.9"):
            self.version = 10
        elif version.startswith("HTTP/1."):
            self.version = 11
        else:
            raise http_client.UnknownProtocol(version)
        self.headers = self.msg = message(header_lines(self.fp))
        encoding = self.headers.get("transfer-encoding")
        self.chunked = bool(encoding and encoding.lower() == "chunked")
        if self.chunked:
            self.chunk_left = None
        self.will_close = self._check_close()
        self.length = _length(self.headers.get("content-length")) if not self.chunked else None
        if status in (http_client.NO_CONTENT, http_client.NOT_MODIFIED) or 100 <= status < 200 \
                or self._method == "HEAD":
            self.length = 0  # no body, whatever the headers say
        if not self.will_close and not self.chunked and self.length is None:
            self.will_close = True  # the body ends when the connection does


def header_lines(fp):
    """The raw lines of a header block, up to and without the empty line that ends it."""
    lines = []
    while True:
        line = fp.readline(MAX_LINE + 1)
        if len(line) > MAX_LINE:
            raise http_client.LineTooLong("header line")
        if line in (b"\r\n", b"\n", b""):
            return lines
        lines.append(line)
        if len(lines) > MAX_HEADERS:
            raise http_client.HTTPException("got more than %d headers" % MAX_HEADERS)


def message(lines):
    """An HTTPMessage holding what email's parser would make of these header lines."""
    msg = http_client.HTTPMessage()
    name = value = None
    for line in _split_lines(b"".join(lines).decode("iso-8859-1")):
        if line[:1] in (" ", "\t"):
            if name is not None:
                value += line  # a folded header's continuation, kept as it came
            continue  # (a block starting with one: email drops it)
        if name is not None:
            msg[name] = value.rstrip("\r\n")
            name = None
        if not _HEADER.match(line):
            break  # FeedParser: the body starts here, no header after it counts
        name, _colon, rest = line.partition(":")
        value = rest.lstrip(" \t")
        if not name:
            name = None  # ": value" has no name: email drops it
    if name is not None:
        msg[name] = value.rstrip("\r\n")
    return msg


def _split_lines(text):
    """Lines with their ends, split at CRLF, CR or LF as email splits them (http.client splits at LF only)."""
    parts = _LINE_END.split(text)
    lines = [parts[n] + parts[n + 1] for n in range(0, len(parts) - 1, 2)]
    if parts[-1]:
        lines.append(parts[-1])
    return lines


def _length(text):
    """Content-Length as http.client takes it: None when absent, not a number, or negative."""
    if not text:
        return None
    try:
        length = int(text)
    except ValueError:
        return None
    return length if length >= 0 else None
