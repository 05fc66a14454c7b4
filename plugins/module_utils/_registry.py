# -*- coding: utf-8 -*-
# Copyright: contributors to imagepusher.registry
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""RegistryClient: the distribution-spec operations one registry host offers.

It composes the transport (HTTP, retries, TLS) and the authenticator (challenges,
tokens) and maps registry answers to typed errors.  Bodies are streamed: manifests
are read up to their size cap, blobs are handed to the caller as an iterator of
large chunks and never held whole in memory.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import threading

try:
    from urllib.parse import urljoin, urlencode, urlsplit
except ImportError:  # pragma: no cover - Python 2
    from urlparse import urljoin, urlsplit
    from urllib import urlencode

from ansible_collections.imagepusher.registry.plugins.module_utils import _digest
from ansible_collections.imagepusher.registry.plugins.module_utils import _manifest
from ansible_collections.imagepusher.registry.plugins.module_utils import _media_types
from ansible_collections.imagepusher.registry.plugins.module_utils._auth import Authenticator, Credentials
from ansible_collections.imagepusher.registry.plugins.module_utils._errors import (
    AuthorizationError,
    ImagePusherError,
    ManifestError,
    NotFoundError,
    RegistryError,
    TLSError,
    TransportError,
)
from ansible_collections.imagepusher.registry.plugins.module_utils._reference import repository_scope
from ansible_collections.imagepusher.registry.plugins.module_utils._transport import iter_body, read_limited

ERROR_BODY_LIMIT = 64 * 1024
TAG_LIST_LIMIT = 16 * 1024 * 1024  # one page of a tag list


def registry_error_text(response):
    """'CODE: message' from an OCI error body, read up to a small limit; '' if none."""
    try:
        data = read_limited(response.iter_content(16384), ERROR_BODY_LIMIT)
        body = json.loads(data[:ERROR_BODY_LIMIT].decode("utf-8", "replace"))
        errors = body.get("errors") if isinstance(body, dict) else None
        if isinstance(errors, list) and errors:
            parts = []
            for err in errors[:3]:
                if isinstance(err, dict):
                    code = str(err.get("code", ""))[:64]
                    message = str(err.get("message", ""))[:200]
                    parts.append(("%s: %s" % (code, message)).strip(": "))
            return "; ".join(parts)
    except Exception:  # an error body is a courtesy: never fail on it
        return ""
    return ""


class RegistryClient:
    """Operations on one registry host, authenticated with one set of credentials."""

    def __init__(self, registry, transport, credentials=None, api_host=None, plain_http=False, loopback=False):
        self.registry = registry  # as the user names it (docker.io), for messages
        self.host = api_host or registry  # where requests go (registry-1.docker.io)
        self.transport = transport
        self.auth = Authenticator(transport, registry, credentials or Credentials())
        self.plain_http = plain_http
        self.loopback = loopback
        # Set once the registry linked a blob on a mount request (201): from then on, the POST that
        # starts an upload can ask for the blob itself (see start_upload) and no HEAD need come first.
        self.mounts_work = False
        self._unknown_at_first_look = {}  # repository -> whether it did not exist when the task first asked
        self._base = None
        self._base_lock = threading.Lock()

    @classmethod
    def for_reference(cls, reference, transport, credentials=None, plain_http=False):
        return cls(reference.registry, transport, credentials, api_host=reference.api_host,
                   plain_http=plain_http, loopback=reference.is_loopback)

    # -- plumbing ---------------------------------------------------------

    @property
    def base_url(self):
        if self._base is None:
            with self._base_lock:
                if self._base is None:
                    self._base = self._choose_scheme()
        return self._base

    def _choose_scheme(self):
        """https, except plain http when asked or, as Docker does, for a loopback registry without TLS.

        The loopback probe is a TLS handshake attempt only: a plain-HTTP server answers it
        with a non-TLS record, which tells us to use http without spending a request.
        """
        https = "https://%s" % self.host
        if self.plain_http:
            return "http://%s" % self.host
        if not self.loopback:
            return https
        # Probed once per host for the whole task: every client of this transport shares the answer.
        return self.transport.remembered_base(self.host, self._probe)

    def _probe(self):
        https = "https://%s" % self.host
        try:
            self.transport.request("GET", https + "/v2/", self.registry, retry=False, timeout=10).close()
            return https
        except TLSError as exc:
            if getattr(exc, "problem", None) != "not_tls":
                raise  # a real TLS server (untrusted certificate, client certificate wanted...): do not downgrade
            return "http://%s" % self.host
        except TransportError:
            return "http://%s" % self.host

    def _url(self, path):
        return self.base_url + path

    def _send(self, method, url, scopes, headers=None, data=None, stream=False, retry=True,
              allow_redirects=True, budget=None):
        """One request with auth: on a 401 answer the challenge once and resend.

        `budget`: the retries of the transfer this request belongs to (see _retry.RetryBudget).
        """
        for attempt in (0, 1):
            sent_headers = dict(headers or {})
            authorization = self.auth.header_for(scopes)
            if authorization:
                sent_headers["Authorization"] = authorization
            if hasattr(data, "seek_start"):
                data.seek_start()
            response = self.transport.request(method, url, self.registry, headers=sent_headers, data=data,
                                              stream=stream, retry=retry, allow_redirects=allow_redirects,
                                              budget=budget)
            if response.status_code == 401 and attempt == 0 and self.auth.answer(response, scopes):
                response.close()
                continue
            return response
        return response

    def _fail(self, response, what, scopes):
        """Raise the typed error for an unexpected answer; always closes the response."""
        status = response.status_code
        try:
            detail = registry_error_text(response)
        finally:
            response.close()
        suffix = " (%s)" % detail if detail else ""
        if status == 401:
            error = self.auth.denied(scopes, status, response.headers.get("WWW-Authenticate"))
            error.message += suffix
            raise error
        if status == 403:
            raise AuthorizationError(self.auth.denied(scopes, status).message + suffix, status=status,
                                     registry=self.registry)
        if status == 404:
            raise NotFoundError("%s not found on %s%s" % (what, self.registry, suffix), status=status,
                                registry=self.registry)
        raise RegistryError("%s: registry %s answered HTTP %d%s" % (what, self.registry, status, suffix),
                            status=status, registry=self.registry)

    def _same_host_url(self, location, what):
        """Resolve a Location header; refuse one that sends an upload to another host."""
        if not location:
            raise RegistryError("%s: registry %s sent no Location header" % (what, self.registry))
        url = urljoin(self.base_url + "/", location)
        if _origin(url) != _origin(self.base_url) or "@" in urlsplit(url).netloc:
            raise RegistryError("%s: registry %s tried to send the request to another host or scheme (%s://%s); "
                                "refusing" % (what, self.registry, urlsplit(url).scheme, urlsplit(url).netloc))
        return url

    # -- operations ---------------------------------------------------------

    def head_manifest(self, repository, ref, scopes=None):
        """{'digest', 'media_type', 'size'} for a tag or digest, or None when it does not exist.

        digest may be None when the registry omits Docker-Content-Digest: GET then.
        """
        scopes = scopes or [repository_scope(repository, "pull")]
        what = "manifest %s:%s" % (repository, ref)
        response = self._send("HEAD", self._url("/v2/%s/manifests/%s" % (repository, ref)), scopes,
                              headers={"Accept": _media_types.MANIFEST_ACCEPT})
        if response.status_code == 404:
            response.close()
            return None
        if response.status_code != 200:
            self._fail(response, what, scopes)
        response.close()
        digest = response.headers.get("Docker-Content-Digest")
        if digest:
            digest = _digest.validate(digest)
        size = response.headers.get("Content-Length")
        return {
            "digest": digest,
            "media_type": (response.headers.get("Content-Type") or "").split(";")[0].strip() or None,
            "size": int(size) if size and size.isdigit() else None,
        }

    def get_manifest(self, repository, ref, expected_digest=None, scopes=None):
        """The manifest or index as a parsed _manifest.Manifest holding the exact bytes served."""
        scopes = scopes or [repository_scope(repository, "pull")]
        what = "manifest %s%s%s" % (repository, "@" if ref.startswith("sha") and ":" in ref else ":", ref)
        response = self._send("GET", self._url("/v2/%s/manifests/%s" % (repository, ref)), scopes,
                              headers={"Accept": _media_types.MANIFEST_ACCEPT}, stream=True)
        if response.status_code != 200:
            self._fail(response, what, scopes)
        try:
            raw = read_limited(iter_body(response, self.registry, 65536), _manifest.MAX_MANIFEST_BYTES)
            if len(raw) > _manifest.MAX_MANIFEST_BYTES:
                raise ManifestError("%s from %s is larger than the %d-byte limit for manifests"
                                    % (what, self.registry, _manifest.MAX_MANIFEST_BYTES))
        finally:
            response.close()
        try:
            announced = response.headers.get("Docker-Content-Digest")
            expected = expected_digest or (announced and _digest.validate(announced)) or None
            return _manifest.parse(raw, response.headers.get("Content-Type"), expected_digest=expected)
        except ImagePusherError as exc:
            # Name the image and the registry: "Manifest: expected ..." alone says neither.
            raise type(exc)("%s from %s: %s" % (what, self.registry, exc.message), **exc.details)

    def head_blob(self, repository, digest, scopes=None, budget=None):
        """Size of the blob if the repository has it, else None."""
        scopes = scopes or [repository_scope(repository, "pull")]
        response = self._send("HEAD", self._url("/v2/%s/blobs/%s" % (repository, digest)), scopes, budget=budget)
        response.close()
        if response.status_code == 404:
            return None
        if response.status_code != 200:
            self._fail(response, "blob %s in %s" % (digest, repository), scopes)
        size = response.headers.get("Content-Length")
        return int(size) if size and size.isdigit() else -1

    def open_blob(self, repository, digest, offset=0, scopes=None, budget=None):
        """(streaming response, offset it starts at). The offset is 0 when the server ignored Range."""
        scopes = scopes or [repository_scope(repository, "pull")]
        headers = {"Range": "bytes=%d-" % offset} if offset else None
        response = self._send("GET", self._url("/v2/%s/blobs/%s" % (repository, digest)), scopes,
                              headers=headers, stream=True, budget=budget)
        if response.status_code == 206 and offset:
            start = _content_range_start(response.headers.get("Content-Range"))
            if start != offset:
                response.close()
                raise RegistryError("blob %s: registry %s answered a Range request with the wrong range"
                                    % (digest, self.registry))
            return response, offset
        if response.status_code == 416 and offset:
            # The partial file claims more than the server has: start over.
            response.close()
            return self.open_blob(repository, digest, 0, scopes, budget)
        if response.status_code != 200:
            self._fail(response, "blob %s in %s" % (digest, repository), scopes)
        return response, 0

    def get_small_blob(self, repository, digest, limit, scopes=None):
        """A small blob (an image config) in memory, bounded by `limit` and verified."""
        response, _start = self.open_blob(repository, digest, 0, scopes)
        verifier = _digest.DigestVerifier(digest)
        try:
            data = read_limited(iter_body(response, self.registry, 65536), limit)
        finally:
            response.close()
        if len(data) > limit:
            raise RegistryError("blob %s in %s is larger than the %d bytes expected of a config"
                                % (digest, repository, limit))
        verifier.update(data)
        verifier.check("blob %s" % digest)
        return data

    def mount_blob(self, repository, digest, source_repository, budget=None):
        """Ask the registry to link a blob from another repository. True when it did."""
        scopes = [repository_scope(repository, "pull", "push"), repository_scope(source_repository, "pull")]
        url = self._url("/v2/%s/blobs/uploads/?%s" % (repository, urlencode([("mount", digest),
                                                                             ("from", source_repository)])))
        response = self._send("POST", url, scopes, budget=budget)
        response.close()
        if response.status_code == 201:
            self.mounts_work = True
            return True
        if response.status_code == 202:
            # Not mountable (other repository lacks it, or no access): an upload session was opened
            # instead; cancel it so the registry does not keep it around.
            location = response.headers.get("Location")
            if location:
                try:
                    self._send("DELETE", self._same_host_url(location, "cancel upload"), scopes, budget=budget).close()
                except Exception:
                    pass
            return False
        if response.status_code in (401, 403, 404):
            return False
        self._fail(response, "mount of blob %s into %s" % (digest, repository), scopes)

    def start_upload(self, repository, budget=None, probe=None):
        """POST an upload session: (location URL, minimum chunk length or None).

        With `probe` (a digest) and a registry that has honoured a mount, the POST asks to mount
        that blob from the repository itself: a registry holding it there links it again and
        answers 201, and (None, None) is returned; otherwise it opens the session as usual. One
        request then does the work of the HEAD before an upload and of the POST that opens it.
        """
        scopes = [repository_scope(repository, "pull", "push")]
        path = "/v2/%s/blobs/uploads/" % repository
        asking = bool(probe) and self.mounts_work  # read once: another thread may set it meanwhile
        if asking:
            path += "?" + urlencode([("mount", probe), ("from", repository)])
        response = self._send("POST", self._url(path), scopes, budget=budget)
        response.close()
        if response.status_code == 201 and asking:
            return None, None
        if response.status_code != 202:
            self._fail(response, "start of a blob upload to %s" % repository, scopes)
        min_chunk = response.headers.get("OCI-Chunk-Min-Length")
        return (self._same_host_url(response.headers.get("Location"), "blob upload to %s" % repository),
                int(min_chunk) if min_chunk and min_chunk.isdigit() else None)

    def upload_status(self, repository, location, budget=None):
        """(bytes the registry holds, Location to continue at) for an upload session; None when gone.

        The registry answers with a fresh Location: Distribution signs the offset into it, so
        the next PATCH must use that one, not the one we asked with.
        """
        scopes = [repository_scope(repository, "pull", "push")]
        response = self._send("GET", self._same_host_url(location, "upload status"), scopes, budget=budget)
        response.close()
        if response.status_code == 204:
            end = _range_end(response.headers.get("Range"))
            next_location = response.headers.get("Location")
            return ((end + 1) if end is not None else 0,
                    self._same_host_url(next_location, "upload status") if next_location else location)
        return None

    def upload_chunk(self, repository, location, body, start, what, budget=None):
        """PATCH one chunk (or the whole blob) at `start`; returns (next location, status).

        The transport never retries the PATCH (its body is a stream it cannot replay), so it
        spends nothing of `budget`: the caller restarts the upload and draws from it then.
        """
        scopes = [repository_scope(repository, "pull", "push")]
        headers = {"Content-Type": "application/octet-stream"}
        length = len(body)
        if length:
            headers["Content-Range"] = "%d-%d" % (start, start + length - 1)
        # A streamed body cannot be replayed by the transport: the caller resumes instead.
        response = self._send("PATCH", location, scopes, headers=headers, data=body, retry=False, budget=budget)
        response.close()
        if response.status_code != 202:
            if response.status_code == 413:
                raise RegistryError("%s: registry %s refused a %d-byte chunk as too large"
                                    % (what, self.registry, length), status=413, registry=self.registry)
            self._fail(response, what, scopes)
        return self._same_host_url(response.headers.get("Location"), what), response.status_code

    def cancel_upload(self, repository, location, budget=None):
        """DELETE an upload session we abandon, best effort: True when the registry dropped it."""
        scopes = [repository_scope(repository, "pull", "push")]
        try:
            response = self._send("DELETE", self._same_host_url(location, "cancel upload"), scopes, budget=budget)
        except ImagePusherError:
            return False
        response.close()
        return response.status_code in (200, 202, 204)

    def finish_upload(self, repository, location, digest, what, budget=None, body=None):
        """PUT the digest that completes an upload session, with the blob's last bytes (or the whole blob)
        as `body` when given: a stream the transport cannot replay, so the caller starts over instead."""
        scopes = [repository_scope(repository, "pull", "push")]
        sep = "&" if "?" in location else "?"
        url = location + sep + urlencode([("digest", digest)])
        if body is None:
            response = self._send("PUT", url, scopes, headers={"Content-Length": "0"}, data=b"", budget=budget)
        else:
            response = self._send("PUT", url, scopes, data=body, retry=False, budget=budget, headers={
                "Content-Type": "application/octet-stream", "Content-Length": str(len(body))})
        response.close()
        if response.status_code != 201:
            self._fail(response, what, scopes)

    def put_manifest(self, repository, ref, raw, media_type):
        """PUT the exact manifest bytes; returns the digest the registry reports (or computes)."""
        scopes = [repository_scope(repository, "pull", "push")]
        response = self._send("PUT", self._url("/v2/%s/manifests/%s" % (repository, ref)), scopes,
                              headers={"Content-Type": media_type}, data=raw)
        response.close()
        if response.status_code not in (200, 201):
            self._fail(response, "push of manifest %s:%s" % (repository, ref), scopes)
        digest = response.headers.get("Docker-Content-Digest")
        return _digest.validate(digest) if digest else _digest.of_bytes(raw)

    def get_referrers(self, repository, digest, scopes=None, max_pages=10):
        """The descriptors the OCI 1.1 Referrers API lists for `digest` (Link pages followed), or None
        when the registry has no such API (it answers 404, as Distribution 2.8 does)."""
        scopes = scopes or [repository_scope(repository, "pull")]
        url, found = self._url("/v2/%s/referrers/%s" % (repository, _digest.validate(digest))), []
        for _page in range(max_pages):
            response = self._send("GET", url, scopes, headers={"Accept": _media_types.OCI_INDEX}, stream=True)
            if response.status_code == 404 and not found:
                response.close()
                return None
            if response.status_code != 200:
                self._fail(response, "referrers of %s in %s" % (digest, repository), scopes)
            try:
                raw = read_limited(response.iter_content(65536), _manifest.MAX_MANIFEST_BYTES)
            finally:
                response.close()
            try:
                found.extend(_manifest.parse(raw, _media_types.OCI_INDEX).manifests)
            except ImagePusherError as exc:
                raise RegistryError("referrers of %s from %s: %s" % (digest, self.registry, exc.message))
            url = _next_link(response.headers.get("Link"))
            if not url:
                break
            url = self._same_host_url(url, "referrers of %s" % digest)
        return found

    def repository_unknown(self, repository, scopes=None):
        """True when the registry says it has no repository of that name (a tag list answered 404
        NAME_UNKNOWN: Distribution also says so for a repository holding blobs but no tag). Any other
        answer, an error included, says False: the caller then asks what it would have asked anyway."""
        scopes = scopes or [repository_scope(repository, "pull")]
        try:
            # A credential may be allowed to push and not to list tags: a refusal, like a failed request,
            # only means the copy asks its HEADs.
            response = self._send("GET", self._url("/v2/%s/tags/list?n=1" % repository), scopes, stream=True)
        except ImagePusherError:
            return False
        try:
            return response.status_code == 404 and registry_error_text(response).startswith("NAME_UNKNOWN")
        finally:
            response.close()

    def repository_was_unknown(self, repository, scopes=None):
        """repository_unknown, asked once per task and repository: the first answer is kept."""
        if repository not in self._unknown_at_first_look:
            self._unknown_at_first_look.setdefault(repository, self.repository_unknown(repository, scopes))
        return self._unknown_at_first_look[repository]

    def list_tags(self, repository, page_size=1000, limit=100000):
        """Every tag of a repository, following Link pagination."""
        scopes = [repository_scope(repository, "pull")]
        url = self._url("/v2/%s/tags/list?n=%d" % (repository, page_size))
        tags = []
        seen = set()
        while url and len(tags) < limit:
            if url in seen:
                raise RegistryError("tag list of %s: registry %s repeats a page" % (repository, self.registry))
            seen.add(url)
            response = self._send("GET", url, scopes, stream=True)
            if response.status_code != 200:
                self._fail(response, "tag list of %s" % repository, scopes)
            try:
                data = read_limited(iter_body(response, self.registry, 65536), TAG_LIST_LIMIT)
                if len(data) > TAG_LIST_LIMIT:
                    raise RegistryError("tag list of %s is too large" % repository)
            finally:
                response.close()
            try:
                page = json.loads(data.decode("utf-8")).get("tags") or []
            except (ValueError, AttributeError, UnicodeDecodeError):
                raise RegistryError("tag list of %s from %s is not valid JSON" % (repository, self.registry))
            tags.extend(t for t in page if isinstance(t, str))
            url = _next_link(response.headers.get("Link"))
            if url:
                url = self._same_host_url(url, "tag list of %s" % repository)
        return tags


def _origin(url):
    """(scheme, host, port) with the default port filled in: what "same host" means for us."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    try:
        port = parts.port
    except ValueError:
        port = None
    return scheme, (parts.hostname or "").lower(), port or {"https": 443, "http": 80}.get(scheme)


def _content_range_start(value):
    # "bytes 100-199/200"
    try:
        return int(value.split()[1].split("-")[0])
    except (AttributeError, IndexError, ValueError):
        return None


def _range_end(value):
    # upload status "Range: 0-1023" (inclusive end); "0-0" may mean nothing received on some servers
    try:
        return int(value.split("-")[1])
    except (AttributeError, IndexError, ValueError):
        return None


def _next_link(value):
    # Link: </v2/repo/tags/list?n=2&last=b>; rel="next"
    if not value:
        return None
    for part in value.split(","):
        if 'rel="next"' in part or "rel=next" in part:
            start, end = part.find("<"), part.find(">")
            if 0 <= start < end:
                return part[start + 1:end]
    return None
