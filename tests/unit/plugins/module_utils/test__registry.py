# -*- coding: utf-8 -*-
# Copyright: contributors to imagepusher.registry
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""RegistryClient against an in-process fake registry.

Only edge cases a real registry will not produce on demand live here (hostile or
broken answers, exact request shapes); the ordinary flows run against a real
registry in tests/integration.
"""

import json
import shutil
import ssl
import subprocess
import threading
import time

import pytest

from ansible_collections.imagepusher.registry.plugins.module_utils import _media_types as mt
from ansible_collections.imagepusher.registry.plugins.module_utils._auth import Credentials
from ansible_collections.imagepusher.registry.plugins.module_utils._digest import of_bytes
from ansible_collections.imagepusher.registry.plugins.module_utils._errors import (
    AuthenticationError,
    AuthorizationError,
    DigestMismatchError,
    InvalidDigestError,
    ManifestError,
    NotFoundError,
    RegistryError,
    TLSError,
    TransportError,
)
from ansible_collections.imagepusher.registry.plugins.module_utils._manifest import MAX_MANIFEST_BYTES
from ansible_collections.imagepusher.registry.plugins.module_utils._registry import (
    RegistryClient,
    registry_error_text,
)
from ansible_collections.imagepusher.registry.plugins.module_utils._transport import Transport
from tests.unit.plugins.module_utils.fake_http import FakeServer, Reply, closed_port, json_reply, scripted

REGISTRY = "reg.test"
REPO = "team/app"
PASSWORD = "pa55-w0rd-SECRET"

CONFIG = json.dumps({"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": []}}).encode()
LAYER = b"layer bytes " * 100


def descriptor(media_type, content):
    return {"mediaType": media_type, "digest": of_bytes(content), "size": len(content)}


MANIFEST = json.dumps({
    "schemaVersion": 2,
    "mediaType": mt.OCI_MANIFEST,
    "config": descriptor(mt.OCI_CONFIG, CONFIG),
    "layers": [descriptor(mt.OCI_LAYER_GZIP, LAYER)],
}).encode()
MANIFEST_DIGEST = of_bytes(MANIFEST)
BLOB = bytes(range(256)) * 40  # 10240 bytes
BLOB_DIGEST = of_bytes(BLOB)


def oci_errors(code, message):
    return json.dumps({"errors": [{"code": code, "message": message, "detail": None}]}).encode()


@pytest.fixture
def sleeps():
    return []


@pytest.fixture
def transport(sleeps):
    transport = Transport(retries=1, timeout=5, sleep=sleeps.append)
    yield transport
    transport.close()


def client_for(server, transport, credentials=None, **kwargs):
    kwargs.setdefault("plain_http", True)
    return RegistryClient(REGISTRY, transport, credentials, api_host=server.host, **kwargs)


class Box:
    """Lets an app refer to its own server (for absolute URLs in headers)."""
    server = None


def serve(app):
    box = Box()
    box.server = FakeServer(lambda request, handler: app(request, handler, box.server))
    return box.server


# -- auth through the client ---------------------------------------------------

def bearer_registry(issued="T1", accepted="T1", challenge_extra=""):
    def app(request, handler, server):
        if request.route == "/token":
            return json_reply({"token": issued, "expires_in": 300})
        if request.headers.get("Authorization") != "Bearer " + accepted:
            challenge = 'Bearer realm="%s/token",service="%s",scope="repository:%s:pull"%s' % (
                server.url, REGISTRY, REPO, challenge_extra)
            return Reply(401, oci_errors("UNAUTHORIZED", "authentication required"),
                         {"WWW-Authenticate": challenge, "Content-Type": "application/json"})
        return Reply(200, MANIFEST, {"Docker-Content-Digest": MANIFEST_DIGEST, "Content-Type": mt.OCI_MANIFEST})
    return app


def test_401_bearer_challenge_fetches_a_token_and_retries_with_it(transport):
    with serve(bearer_registry()) as server:
        client = client_for(server, transport)
        found = client.head_manifest(REPO, "v1")
        assert found == {"digest": MANIFEST_DIGEST, "media_type": mt.OCI_MANIFEST, "size": len(MANIFEST)}
        first = [(r.method, r.path, r.headers.get("Authorization")) for r in server.requests]
        # the token is reused: one more request, already authorized
        manifest = client.get_manifest(REPO, "v1")
    assert first == [
        ("HEAD", "/v2/team/app/manifests/v1", None),
        ("GET", "/token?service=reg.test&scope=repository%3Ateam%2Fapp%3Apull", None),
        ("HEAD", "/v2/team/app/manifests/v1", "Bearer T1"),
    ]
    assert [(r.method, r.headers.get("Authorization")) for r in server.requests[3:]] == [("GET", "Bearer T1")]
    assert server.requests[0].headers["Accept"] == mt.MANIFEST_ACCEPT
    assert manifest.raw == MANIFEST and manifest.digest == MANIFEST_DIGEST


@pytest.mark.parametrize("extra, error, message", [
    ("", AuthenticationError,
     "authentication failed for reg.test (user anonymous) (UNAUTHORIZED: authentication required)"),
    (',error="insufficient_scope"', AuthorizationError,
     "anonymous may not pull from team/app (UNAUTHORIZED: authentication required)"),
])
def test_401_after_the_token_raises_the_typed_error(transport, extra, error, message):
    # the registry rejects every token the token service hands out
    with serve(bearer_registry(issued="T1", accepted="never", challenge_extra=extra)) as server:
        client = client_for(server, transport)
        with pytest.raises(error) as info:
            client.get_manifest(REPO, "v1")
    assert info.value.message == message
    assert info.value.status == 401
    assert [r.route for r in server.requests] == ["/v2/team/app/manifests/v1", "/token", "/v2/team/app/manifests/v1"]


@pytest.mark.parametrize("operation, message", [
    (lambda c: c.put_manifest(REPO, "v1", MANIFEST, mt.OCI_MANIFEST), "alice may not push to team/app"),
    (lambda c: c.get_manifest(REPO, "v1"), "alice may not pull from team/app"),
    (lambda c: c.open_blob(REPO, BLOB_DIGEST), "alice may not pull from team/app"),
    (lambda c: c.start_upload(REPO), "alice may not push to team/app"),
])
def test_403_is_an_authorization_error_naming_user_action_and_repository(transport, operation, message):
    reply = Reply(403, oci_errors("DENIED", "requested access to the resource is denied"))
    with FakeServer(scripted(reply)) as server:
        client = client_for(server, transport, Credentials("alice", PASSWORD))
        with pytest.raises(AuthorizationError) as info:
            operation(client)
    assert info.value.message == message + " (DENIED: requested access to the resource is denied)"
    assert info.value.status == 403
    assert info.value.details["registry"] == REGISTRY
    assert PASSWORD not in info.value.message


# -- manifests -----------------------------------------------------------------

def test_head_manifest_404_is_none(transport):
    with FakeServer(scripted(Reply(404, oci_errors("MANIFEST_UNKNOWN", "manifest unknown")))) as server:
        assert client_for(server, transport).head_manifest(REPO, "missing") is None
    assert [(r.method, r.path) for r in server.requests] == [("HEAD", "/v2/team/app/manifests/missing")]


@pytest.mark.parametrize("headers, expected", [
    ({"Docker-Content-Digest": MANIFEST_DIGEST, "Content-Type": mt.DOCKER_MANIFEST + "; charset=utf-8",
      "Content-Length": "528"}, {"digest": MANIFEST_DIGEST, "media_type": mt.DOCKER_MANIFEST, "size": 528}),
    ({"Content-Length": "0"}, {"digest": None, "media_type": None, "size": 0}),
])
def test_head_manifest_fields(transport, headers, expected):
    with FakeServer(scripted(Reply(200, b"", headers))) as server:
        assert client_for(server, transport).head_manifest(REPO, "v1") == expected


def test_head_manifest_refuses_a_path_like_digest_header(transport):
    headers = {"Docker-Content-Digest": "sha256:../../../etc/passwd", "Content-Length": "10"}
    with FakeServer(scripted(Reply(200, b"", headers))) as server:
        with pytest.raises(InvalidDigestError, match="Invalid digest 'sha256:../../../etc/passwd'"):
            client_for(server, transport).head_manifest(REPO, "v1")


def test_get_manifest_404_is_not_found(transport):
    with FakeServer(scripted(Reply(404, oci_errors("MANIFEST_UNKNOWN", "manifest unknown")))) as server:
        with pytest.raises(NotFoundError) as info:
            client_for(server, transport).get_manifest(REPO, "v9")
    assert info.value.message == "manifest team/app:v9 not found on reg.test (MANIFEST_UNKNOWN: manifest unknown)"
    assert info.value.status == 404


def test_get_manifest_with_a_digest_header_that_disagrees_with_the_body(transport):
    other = of_bytes(b"something else")
    reply = Reply(200, MANIFEST, {"Docker-Content-Digest": other, "Content-Type": mt.OCI_MANIFEST})
    with FakeServer(scripted(reply)) as server:
        with pytest.raises(DigestMismatchError) as info:
            client_for(server, transport).get_manifest(REPO, "v1")
    # The message names the image and the registry, then what did not match.
    assert info.value.message == "manifest team/app:v1 from reg.test: Manifest: expected %s but received %s (%d bytes)." % (
        other, MANIFEST_DIGEST, len(MANIFEST))


def test_get_manifest_by_digest_checks_the_requested_digest(transport):
    wanted = of_bytes(b"what we asked for")
    # the header agrees with the body, but not with what we asked for
    reply = Reply(200, MANIFEST, {"Docker-Content-Digest": MANIFEST_DIGEST, "Content-Type": mt.OCI_MANIFEST})
    with FakeServer(scripted(reply)) as server:
        with pytest.raises(DigestMismatchError, match="expected %s" % wanted):
            client_for(server, transport).get_manifest(REPO, wanted, expected_digest=wanted)
    assert server.requests[0].path == "/v2/team/app/manifests/" + wanted


def test_get_manifest_keeps_the_exact_bytes(transport):
    reply = Reply(200, MANIFEST, {"Content-Type": mt.OCI_MANIFEST})  # no digest header: computed
    with FakeServer(scripted(reply)) as server:
        manifest = client_for(server, transport).get_manifest(REPO, MANIFEST_DIGEST, expected_digest=MANIFEST_DIGEST)
    assert manifest.raw == MANIFEST
    assert manifest.digest == MANIFEST_DIGEST
    assert manifest.media_type == mt.OCI_MANIFEST


def test_get_manifest_over_4_mib_is_refused_while_streaming(sleeps):
    total = 5 * 1024 * 1024
    sent = []
    release = threading.Event()

    def app(request, handler):
        handler.send_response(200)
        handler.send_header("Content-Type", mt.OCI_MANIFEST)
        handler.send_header("Content-Length", str(total))
        handler.end_headers()
        block = b" " * 65536
        try:
            # Send a little more than the limit, then stall: a client that reads everything
            # before checking the size would hit its read timeout instead of ManifestError.
            while sum(sent) < MAX_MANIFEST_BYTES + 4 * 65536:
                handler.wfile.write(block)
                sent.append(len(block))
            release.wait(10)
            handler.wfile.write(b" " * (total - sum(sent)))
        except OSError:
            pass
        handler.close_connection = True

    transport = Transport(retries=0, timeout=3, sleep=sleeps.append)
    try:
        with FakeServer(app) as server:
            started = time.monotonic()
            with pytest.raises(ManifestError) as info:
                client_for(server, transport).get_manifest(REPO, "big")
            elapsed = time.monotonic() - started
            release.set()
    finally:
        release.set()
        transport.close()
    assert info.value.message == ("manifest team/app:big from reg.test is larger than the 4194304-byte limit "
                                  "for manifests")
    assert elapsed < 2.5  # never waited for the stalled remainder
    assert sum(sent) < total


# -- blobs -----------------------------------------------------------------------

def blob_server(mode):
    """Serve BLOB, answering Range requests per `mode`."""
    def app(request, handler):
        wanted = request.headers.get("Range")
        if not wanted:
            return Reply(200, BLOB, {"Content-Type": "application/octet-stream"})
        start = int(wanted.split("=")[1].rstrip("-"))
        if mode == "honour":
            return Reply(206, BLOB[start:], {"Content-Range": "bytes %d-%d/%d" % (start, len(BLOB) - 1, len(BLOB))})
        if mode == "ignore":
            return Reply(200, BLOB)
        if mode == "wrong-range":
            return Reply(206, BLOB, {"Content-Range": "bytes 0-%d/%d" % (len(BLOB) - 1, len(BLOB))})
        if mode == "416":
            return Reply(416, b"", {"Content-Range": "bytes */%d" % len(BLOB)})
        raise AssertionError(mode)
    return FakeServer(app)


@pytest.mark.parametrize("mode, offset, expected_start, ranges", [
    ("honour", 4000, 4000, ["bytes=4000-"]),
    ("honour", 0, 0, [None]),
    ("ignore", 4000, 0, ["bytes=4000-"]),
    ("416", 4000, 0, ["bytes=4000-", None]),  # the partial file claims too much: start over
])
def test_open_blob_range_handling(transport, mode, offset, expected_start, ranges):
    with blob_server(mode) as server:
        response, start = client_for(server, transport).open_blob(REPO, BLOB_DIGEST, offset)
        body = response.content
        response.close()
    assert start == expected_start
    assert body == BLOB[expected_start:]
    assert [r.headers.get("Range") for r in server.requests] == ranges
    assert all(r.path == "/v2/team/app/blobs/" + BLOB_DIGEST for r in server.requests)


def test_open_blob_refuses_a_206_with_the_wrong_range(transport):
    with blob_server("wrong-range") as server:
        with pytest.raises(RegistryError) as info:
            client_for(server, transport).open_blob(REPO, BLOB_DIGEST, 4000)
    assert info.value.message == ("blob %s: registry reg.test answered a Range request with the wrong range"
                                  % BLOB_DIGEST)


def test_open_blob_404(transport):
    with FakeServer(scripted(Reply(404, oci_errors("BLOB_UNKNOWN", "blob unknown to registry")))) as server:
        with pytest.raises(NotFoundError) as info:
            client_for(server, transport).open_blob(REPO, BLOB_DIGEST)
    assert info.value.message == ("blob %s in team/app not found on reg.test (BLOB_UNKNOWN: blob unknown to "
                                  "registry)" % BLOB_DIGEST)


@pytest.mark.parametrize("body, limit, error, message", [
    (BLOB, 100, RegistryError, "blob %s in team/app is larger than the 100 bytes expected of a config" % BLOB_DIGEST),
    (BLOB[:-1] + b"X", 1 << 20, DigestMismatchError, "blob %s: expected %s but received" % (BLOB_DIGEST, BLOB_DIGEST)),
])
def test_get_small_blob_is_bounded_and_verified(transport, body, limit, error, message):
    with FakeServer(scripted(Reply(200, body))) as server:
        client = client_for(server, transport)
        with pytest.raises(error) as info:
            client.get_small_blob(REPO, BLOB_DIGEST, limit)
    assert info.value.message.startswith(message)


def test_get_small_blob(transport):
    with FakeServer(scripted(Reply(200, BLOB))) as server:
        assert client_for(server, transport).get_small_blob(REPO, BLOB_DIGEST, 1 << 20) == BLOB


@pytest.mark.parametrize("reply, expected", [
    (Reply(200, b"", {"Content-Length": "10240"}), 10240),
    (Reply(404), None),
])
def test_head_blob(transport, reply, expected):
    with FakeServer(scripted(reply)) as server:
        assert client_for(server, transport).head_blob(REPO, BLOB_DIGEST) == expected
    assert server.requests[0].method == "HEAD"


def test_mount_blob_created(transport):
    with FakeServer(scripted(Reply(201))) as server:
        assert client_for(server, transport).mount_blob(REPO, BLOB_DIGEST, "library/base") is True
    request = server.requests[0]
    assert request.method == "POST" and request.route == "/v2/team/app/blobs/uploads/"
    assert request.query == [("mount", BLOB_DIGEST), ("from", "library/base")]


def test_mount_blob_not_mountable_cancels_the_upload_session(transport):
    replies = [Reply(202, b"", {"Location": "/v2/team/app/blobs/uploads/u-1?_state=abc"}), Reply(204)]
    with FakeServer(scripted(*replies)) as server:
        assert client_for(server, transport).mount_blob(REPO, BLOB_DIGEST, "library/base") is False
    assert [(r.method, r.path) for r in server.requests][1] == ("DELETE", "/v2/team/app/blobs/uploads/u-1?_state=abc")


@pytest.mark.parametrize("status", [401, 403, 404])
def test_mount_blob_refused_falls_back_to_upload(transport, status):
    with FakeServer(scripted(Reply(status))) as server:
        assert client_for(server, transport).mount_blob(REPO, BLOB_DIGEST, "library/base") is False


def test_start_upload_asks_for_the_blob_only_once_the_registry_honoured_a_mount(transport):
    session = Reply(202, b"", {"Location": "/v2/team/app/blobs/uploads/u-1"})
    with FakeServer(scripted(session, Reply(201), Reply(201))) as server:
        client = client_for(server, transport)
        # Not yet known to mount: a plain POST (a registry ignoring mounts would answer 202 to a blob it holds).
        assert client.start_upload(REPO, probe=BLOB_DIGEST)[0] == server.url + "/v2/team/app/blobs/uploads/u-1"
        assert client.mounts_work is False
        assert client.mount_blob(REPO, BLOB_DIGEST, "library/base") is True
        assert client.mounts_work is True
        assert client.start_upload(REPO, probe=BLOB_DIGEST) == (None, None)  # 201: the repository holds it
    first, _mount, probe = server.requests
    assert first.method == "POST" and first.query == []
    assert probe.method == "POST" and probe.route == "/v2/team/app/blobs/uploads/"
    assert probe.query == [("mount", BLOB_DIGEST), ("from", REPO)]


@pytest.mark.parametrize("reply, unknown", [
    (Reply(404, b'{"errors":[{"code":"NAME_UNKNOWN","message":"repository name not known to registry"}]}'), True),
    (Reply(404, b'{"errors":[{"code":"NOT_FOUND","message":"no such thing"}]}'), False),
    (Reply(404, b"not json"), False),
    (Reply(200, b'{"name":"team/app","tags":["v1"]}'), False),
    (Reply(500), False),
    (Reply(403, b'{"errors":[{"code":"DENIED","message":"not allowed to list images"}]}'), False),
])
def test_repository_unknown_only_where_the_registry_says_name_unknown(transport, reply, unknown):
    with FakeServer(scripted(reply)) as server:
        assert client_for(server, transport).repository_unknown(REPO) is unknown
    request = server.requests[0]
    assert request.method == "GET" and request.route == "/v2/team/app/tags/list" and request.query == [("n", "1")]


def test_a_tag_list_the_token_service_refuses_says_known_and_raises_nothing(transport):
    def app(request, handler, server):
        if request.route == "/token":
            return Reply(403, oci_errors("DENIED", "no list for you"))
        challenge = 'Bearer realm="%s/token",service="%s"' % (server.url, REGISTRY)
        return Reply(401, oci_errors("UNAUTHORIZED", "authentication required"), {"WWW-Authenticate": challenge})

    with serve(app) as server:
        assert client_for(server, transport, Credentials("alice", "secret")).repository_unknown(REPO) is False


def test_a_tag_list_whose_connection_fails_says_known_and_raises_nothing():
    class Dropping:
        def request(self, *args, **kwargs):
            raise TransportError("connection to registry reg.test dropped: reset")

    # The copy then asks its HEADs, which meet the failure (or not) where it matters.
    assert RegistryClient(REGISTRY, Dropping()).repository_unknown(REPO) is False


def test_repository_was_unknown_asks_once_per_task_and_keeps_the_first_answer(transport):
    unknown = Reply(404, b'{"errors":[{"code":"NAME_UNKNOWN","message":"repository name not known to registry"}]}')
    with FakeServer(scripted(unknown, Reply(200, b'{"tags":["v1"]}'))) as server:
        client = client_for(server, transport)
        # The task's own images create the repository: it stays "new" for the task (they know what is in it).
        assert client.repository_was_unknown(REPO) is True
        assert client.repository_was_unknown(REPO) is True
    assert len(server.requests) == 1


def test_a_probing_start_upload_the_registry_answers_with_a_session_returns_it(transport):
    headers = {"Location": "/v2/team/app/blobs/uploads/u-2", "OCI-Chunk-Min-Length": "1024"}
    with FakeServer(scripted(Reply(202, b"", headers))) as server:
        client = client_for(server, transport)
        client.mounts_work = True
        assert client.start_upload(REPO, probe=BLOB_DIGEST) == (server.url + "/v2/team/app/blobs/uploads/u-2", 1024)
    assert [r.method for r in server.requests] == ["POST"]  # the session it opened is the upload's: no DELETE


# -- Location handling -------------------------------------------------------------

@pytest.mark.parametrize("location, expected_path", [
    ("/v2/team/app/blobs/uploads/u-1?_state=xyz", "/v2/team/app/blobs/uploads/u-1?_state=xyz"),
    ("v2/team/app/blobs/uploads/u-2", "/v2/team/app/blobs/uploads/u-2"),
    ("{url}/v2/team/app/blobs/uploads/u-3", "/v2/team/app/blobs/uploads/u-3"),
])
def test_same_host_url_resolves_locations_on_the_registry(transport, location, expected_path):
    with FakeServer(scripted(Reply(200))) as server:
        client = client_for(server, transport)
        url = client._same_host_url(location.format(url=server.url), "blob upload to team/app")
    assert url == server.url + expected_path


@pytest.mark.parametrize("location, netloc", [
    ("https://evil.example/v2/team/app/blobs/uploads/u-1", "https://evil.example"),
    ("//evil.example:8443/upload", "http://evil.example:8443"),
    ("http://127.0.0.1/upload", "http://127.0.0.1"),  # same address, other port
    ("http://user@{host}/upload", "http://user@{host}"),  # credentials smuggled into the URL
])
def test_same_host_url_refuses_another_host(transport, location, netloc):
    with FakeServer(scripted(Reply(200))) as server:
        client = client_for(server, transport)
        with pytest.raises(RegistryError) as info:
            client._same_host_url(location.format(host=server.host), "blob upload to team/app")
        netloc = netloc.format(host=server.host)
    assert info.value.message == ("blob upload to team/app: registry reg.test tried to send the request to another "
                                  "host or scheme (%s); refusing" % netloc)


def test_same_host_url_refuses_a_downgrade_to_plain_http():
    client = RegistryClient("registry.example", NoNetwork())
    assert client.base_url == "https://registry.example"
    with pytest.raises(RegistryError, match="blob upload to team/app: registry registry.example"):
        client._same_host_url("http://registry.example/v2/team/app/blobs/uploads/u-1", "blob upload to team/app")


def test_same_host_url_accepts_the_default_port_spelled_out():
    client = RegistryClient("registry.example", NoNetwork())
    url = client._same_host_url("https://registry.example:443/v2/team/app/blobs/uploads/u-1", "blob upload")
    assert url == "https://registry.example:443/v2/team/app/blobs/uploads/u-1"


@pytest.mark.parametrize("location", [None, ""])
def test_same_host_url_without_location(transport, location):
    with FakeServer(scripted(Reply(200))) as server:
        with pytest.raises(RegistryError) as info:
            client_for(server, transport)._same_host_url(location, "blob upload to team/app")
    assert info.value.message == "blob upload to team/app: registry reg.test sent no Location header"


def test_start_upload_refuses_a_location_on_another_host(transport):
    with FakeServer(scripted(Reply(202, b"", {"Location": "https://evil.example/upload?x=1"}))) as server:
        with pytest.raises(RegistryError, match=r"tried to send the request to another host or scheme \(https://evil.example\)"):
            client_for(server, transport).start_upload(REPO)


def test_start_upload_returns_the_location_and_minimum_chunk(transport):
    headers = {"Location": "/v2/team/app/blobs/uploads/u-9", "OCI-Chunk-Min-Length": "5242880"}
    with FakeServer(scripted(Reply(202, b"", headers))) as server:
        location, min_chunk = client_for(server, transport).start_upload(REPO)
    assert location == server.url + "/v2/team/app/blobs/uploads/u-9"
    assert min_chunk == 5242880


@pytest.mark.parametrize("reply, expected", [
    # The registry's fresh Location (its signed offset) is the one to continue at.
    (Reply(204, b"", {"Range": "0-1023", "Location": "/v2/team/app/blobs/uploads/u-1?_state=new"}),
     (1024, "/v2/team/app/blobs/uploads/u-1?_state=new")),
    (Reply(204, b"", {"Range": "0-1023"}), (1024, "/v2/team/app/blobs/uploads/u-1")),
    (Reply(204), (0, "/v2/team/app/blobs/uploads/u-1")),
    (Reply(404), None),
])
def test_upload_status(transport, reply, expected):
    with FakeServer(scripted(reply)) as server:
        client = client_for(server, transport)
        status = client.upload_status(REPO, server.url + "/v2/team/app/blobs/uploads/u-1")
    assert status == (None if expected is None else (expected[0], server.url + expected[1]))


def test_upload_status_refuses_a_session_on_another_host(transport):
    with FakeServer(scripted(Reply(204))) as server:
        with pytest.raises(RegistryError, match="another host or scheme"):
            client_for(server, transport).upload_status(REPO, "https://evil.example/v2/team/app/blobs/uploads/u-1")


# -- tag list pagination -------------------------------------------------------------

def paged_tags(link_style="relative"):
    pages = {
        "/v2/team/app/tags/list?n=2": (["a", "b"], "/v2/team/app/tags/list?n=2&last=b"),
        "/v2/team/app/tags/list?n=2&last=b": (["c", "d"], "{url}/v2/team/app/tags/list?n=2&last=d"),
        "/v2/team/app/tags/list?n=2&last=d": (["e"], None),
    }

    def app(request, handler, server):
        tags, link = pages[request.path]
        headers = {}
        if link:
            if link_style == "foreign":
                link = "https://evil.example/v2/team/app/tags/list?n=2&last=x"
            headers["Link"] = '<%s>; rel="next"' % link.format(url=server.url)
        return json_reply({"name": REPO, "tags": tags}, headers=headers)
    return serve(app)


def test_list_tags_follows_link_pages(transport):
    with paged_tags() as server:
        tags = client_for(server, transport).list_tags(REPO, page_size=2)
    assert tags == ["a", "b", "c", "d", "e"]
    assert [r.path for r in server.requests] == [
        "/v2/team/app/tags/list?n=2", "/v2/team/app/tags/list?n=2&last=b", "/v2/team/app/tags/list?n=2&last=d"]


def test_list_tags_refuses_a_next_page_on_another_host(transport):
    with paged_tags("foreign") as server:
        with pytest.raises(RegistryError, match="tag list of team/app: registry reg.test tried to send the request to "
                                                r"another host or scheme \(https://evil.example\)"):
            client_for(server, transport).list_tags(REPO, page_size=2)
    assert len(server.requests) == 1


@pytest.mark.parametrize("body", [b"not json", b"[1]"])
def test_list_tags_invalid_json(transport, body):
    with FakeServer(scripted(Reply(200, body))) as server:
        with pytest.raises(RegistryError) as info:
            client_for(server, transport).list_tags(REPO)
    assert info.value.message == "tag list of team/app from reg.test is not valid JSON"


def test_list_tags_refuses_a_pagination_loop(transport):
    def app(request, handler):
        if len(server.requests) > 10:  # keep the current (looping) code from running forever
            return Reply(400, oci_errors("STOP", "test server gave up"))
        return json_reply({"tags": []}, headers={"Link": '</v2/team/app/tags/list?n=2>; rel="next"'})

    server = FakeServer(app)
    with server:
        with pytest.raises(RegistryError) as info:
            client_for(server, transport).list_tags(REPO, page_size=2)
    assert len(server.requests) <= 3
    assert "HTTP 400" not in info.value.message


# -- scheme choice ------------------------------------------------------------------

class NoNetwork:
    """A transport stand-in that fails the test if anything is sent."""

    def request(self, *args, **kwargs):
        raise AssertionError("no request expected, got %r" % (args,))


@pytest.mark.parametrize("plain_http, loopback, expected", [
    (True, False, "http://registry.example:5000"),
    (True, True, "http://registry.example:5000"),
    (False, False, "https://registry.example:5000"),
])
def test_scheme_without_probing(plain_http, loopback, expected):
    client = RegistryClient("registry.example:5000", NoNetwork(), plain_http=plain_http, loopback=loopback)
    assert client.base_url == expected
    assert client._url("/v2/") == expected + "/v2/"


def test_loopback_plain_http_registry_is_used_over_http(transport, sleeps):
    with FakeServer(scripted(Reply(200, b"{}"))) as server:
        client = client_for(server, transport, plain_http=False, loopback=True)
        assert client.base_url == "http://" + server.host
        client.head_blob(REPO, BLOB_DIGEST)
    # the TLS probe is not a recorded HTTP request; the HEAD went over plain HTTP
    assert [(r.method, r.path) for r in server.requests] == [("HEAD", "/v2/team/app/blobs/" + BLOB_DIGEST)]
    assert sleeps == []  # the probe is not retried


def test_loopback_with_nothing_listening_falls_back_to_http(transport, sleeps):
    host = "127.0.0.1:%d" % closed_port()
    client = RegistryClient(REGISTRY, transport, api_host=host, loopback=True)
    assert client.base_url == "http://" + host
    assert sleeps == []


@pytest.fixture(scope="module")
def self_signed(tmp_path_factory):
    if not shutil.which("openssl"):
        pytest.skip("openssl is needed to make a test certificate")
    directory = tmp_path_factory.mktemp("tls")
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                    "-nodes", "-days", "2", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
    return str(cert), str(key)


def tls_server(app, cert, key):
    server = FakeServer(app)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server._httpd.socket = context.wrap_socket(server._httpd.socket, server_side=True)
    return server


def test_loopback_tls_registry_with_untrusted_certificate_is_not_downgraded(transport, self_signed):
    with tls_server(scripted(Reply(200, b"{}")), *self_signed) as server:
        client = client_for(server, transport, plain_http=False, loopback=True)
        with pytest.raises(TLSError) as info:
            client.base_url
    assert "certificate verify failed" in info.value.message.lower()
    assert info.value.message.startswith("TLS verification failed for registry reg.test")


@pytest.mark.parametrize("how", ["ca_path", "validate_certs=false"])
def test_loopback_tls_registry_that_verifies_is_used_over_https(sleeps, self_signed, how):
    cert, key = self_signed
    if how == "ca_path":
        transport = Transport(retries=0, timeout=5, ca_path=cert, sleep=sleeps.append)
    else:
        transport = Transport(retries=0, timeout=5, validate_certs=False, sleep=sleeps.append)
    try:
        with tls_server(scripted(Reply(200, b"{}")), cert, key) as server:
            client = client_for(server, transport, plain_http=False, loopback=True)
            assert client.base_url == "https://" + server.host
            client.head_blob(REPO, BLOB_DIGEST)
    finally:
        transport.close()
    assert [r.path for r in server.requests] == ["/v2/", "/v2/team/app/blobs/" + BLOB_DIGEST]  # the probe, then the HEAD


# -- error bodies ---------------------------------------------------------------------

class BodyOnly:
    def __init__(self, body):
        self.body = body

    def iter_content(self, size):
        for start in range(0, len(self.body), size):
            yield self.body[start:start + size]


@pytest.mark.parametrize("body, expected", [
    (oci_errors("MANIFEST_UNKNOWN", "manifest unknown"), "MANIFEST_UNKNOWN: manifest unknown"),
    (json.dumps({"errors": [{"code": "DENIED", "message": "no"}, {"code": "UNAUTHORIZED", "message": "who?"}]}),
     "DENIED: no; UNAUTHORIZED: who?"),
    (json.dumps({"errors": [{"code": "C%d" % i, "message": "m"} for i in range(5)]}), "C0: m; C1: m; C2: m"),
    (json.dumps({"errors": [{"code": "TOOMANYREQUESTS"}]}), "TOOMANYREQUESTS"),
    (json.dumps({"errors": [{"message": "only a message"}]}), "only a message"),
    (json.dumps({"errors": [{"code": "X" * 100, "message": "y" * 500}]}), "X" * 64 + ": " + "y" * 200),
    (json.dumps({"errors": ["not a dict", {"code": "OK", "message": "kept"}]}), "OK: kept"),
    (json.dumps({"errors": []}), ""),
    (json.dumps({"message": "not an OCI error body"}), ""),
    (json.dumps(["errors"]), ""),
    (b"<html><body>502 Bad Gateway</body></html>", ""),
    (b"\xff\xfe\x00garbage", ""),
    (b"", ""),
    (b'{"errors": [' + b" " * (70 * 1024) + b"]}", ""),  # cut at 64 KiB: no longer JSON
])
def test_registry_error_text(body, expected):
    if isinstance(body, str):
        body = body.encode()
    assert registry_error_text(BodyOnly(body)) == expected


def test_registry_error_text_never_raises():
    class Broken:
        def iter_content(self, size):
            yield from ()  # a generator, like requests' iter_content, that fails when read
            raise IOError("connection reset")
    assert registry_error_text(Broken()) == ""


def test_registry_error_text_reads_at_most_the_limit():
    read = []

    class Endless:
        def iter_content(self, size):
            while True:
                read.append(size)
                yield b"x" * size
    assert registry_error_text(Endless()) == ""
    assert sum(read) <= 64 * 1024 + 16384


# -- the Referrers API ---------------------------------------------------------------------

REFERRED = "sha256:" + "ab" * 32


def referrer_entry(n):
    return {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": "sha256:" + ("%d" % n) * 64,
            "size": 100 + n, "artifactType": "application/example"}


def test_get_referrers_follows_link_pages(transport):
    pages = {
        "/v2/team/app/referrers/" + REFERRED: ([referrer_entry(1)], "/v2/team/app/referrers/%s?next=2" % REFERRED),
        "/v2/team/app/referrers/%s?next=2" % REFERRED: ([referrer_entry(2)], None),
    }

    def app(request, handler):
        entries, link = pages[request.path]
        headers = {"Content-Type": "application/vnd.oci.image.index.v1+json"}
        if link:
            headers["Link"] = '<%s>; rel="next"' % link
        return json_reply({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
                           "manifests": entries}, headers=headers)

    with FakeServer(app) as server:
        found = client_for(server, transport).get_referrers(REPO, REFERRED)
    assert [(d.digest, d.artifact_type, d.size) for d in found] == [
        ("sha256:" + "1" * 64, "application/example", 101), ("sha256:" + "2" * 64, "application/example", 102)]
    assert server.requests[0].headers.get("Accept") == "application/vnd.oci.image.index.v1+json"


def test_get_referrers_is_none_where_the_registry_has_no_such_api(transport):
    with FakeServer(scripted(Reply(404, b"404 page not found\n"))) as server:
        assert client_for(server, transport).get_referrers(REPO, REFERRED) is None


def test_get_referrers_refuses_a_list_that_is_no_index(transport):
    with FakeServer(scripted(json_reply({"manifests": "nope"}))) as server:
        with pytest.raises(RegistryError, match="referrers of %s from reg.test: " % REFERRED):
            client_for(server, transport).get_referrers(REPO, REFERRED)
