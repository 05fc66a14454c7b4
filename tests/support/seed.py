"""Put images into a registry with plain ``requests`` (deliberately NOT our client).

Tests that check our client pull correctly need content put there by something else; this
is the smallest correct pusher from the distribution spec:

  blobs:      HEAD /v2/<repo>/blobs/<digest>  (200 -> already there, skip)
              POST /v2/<repo>/blobs/uploads/  -> 202 + Location
              PUT  <Location>?digest=<digest> with all bytes (monolithic upload)
  manifests:  PUT /v2/<repo>/manifests/<digest> for each child of an index,
              then PUT /v2/<repo>/manifests/<tag> for the top one,
              with the exact bytes and their Content-Type.

    push(reg.url, "test/app", images.oci_single(), "v1")
    push(reg.url, "test/app", idx, "v1", auth=("user", "pass"))   # any requests auth works
"""

from __future__ import annotations

from urllib.parse import urljoin

import requests

from tests.support.images import Image, Index


class SeedError(RuntimeError):
    pass


def _check(resp: requests.Response, expected: tuple[int, ...], what: str) -> None:
    if resp.status_code not in expected:
        raise SeedError(f"{what}: HTTP {resp.status_code} (wanted {expected}): {resp.text[:500]}")


def _session(session, auth, verify):
    if session is not None:
        return session
    s = requests.Session()
    # trust_env=False: otherwise REQUESTS_CA_BUNDLE (set on these machines) silently wins
    # over session.verify, and proxy/netrc variables could reroute or add credentials.
    s.trust_env = False
    s.auth = auth
    s.verify = verify
    return s


def push_blob(base_url: str, repo: str, digest: str, data: bytes, *, auth=None,
              verify=True, session: requests.Session | None = None) -> bool:
    """Upload one blob unless the registry has it. Returns True when it was uploaded."""
    s = _session(session, auth, verify)
    r = s.head(f"{base_url}/v2/{repo}/blobs/{digest}")
    if r.status_code == 200:
        return False
    _check(r, (404,), f"HEAD blob {digest} in {repo}")
    r = s.post(f"{base_url}/v2/{repo}/blobs/uploads/")
    _check(r, (202,), f"POST upload in {repo}")
    # Location may be relative or absolute and already carries a query (_state=...);
    # requests appends params to an existing query correctly.
    location = urljoin(base_url + "/", r.headers["Location"])
    r = s.put(location, params={"digest": digest}, data=data,
              headers={"Content-Type": "application/octet-stream"})
    _check(r, (201,), f"PUT blob {digest} in {repo}")
    return True


def push_manifest(base_url: str, repo: str, reference: str, media_type: str, data: bytes, *,
                  auth=None, verify=True, session: requests.Session | None = None) -> str:
    """PUT manifest bytes as-is under a tag or digest; returns the registry's digest."""
    s = _session(session, auth, verify)
    r = s.put(f"{base_url}/v2/{repo}/manifests/{reference}", data=data,
              headers={"Content-Type": media_type})
    _check(r, (201,), f"PUT manifest {repo}:{reference}")
    return r.headers.get("Docker-Content-Digest", "")


def push(base_url: str, repo: str, obj: Image | Index, tag: str | None = None, *, auth=None,
         verify=True, session: requests.Session | None = None) -> str:
    """Push an Image or Index (all blobs, child manifests by digest, top manifest by tag or,
    without a tag, by digest). Returns the top manifest digest; checks the registry agrees."""
    s = _session(session, auth, verify)
    for digest, data in obj.blobs.items():
        push_blob(base_url, repo, digest, data, session=s)
    if isinstance(obj, Index):
        for img in obj.images:
            got = push_manifest(base_url, repo, img.digest, img.media_type, img.manifest,
                                session=s)
            if got and got != img.digest:
                raise SeedError(f"registry digest {got} != {img.digest} for a child of {repo}")
    got = push_manifest(base_url, repo, tag or obj.digest, obj.media_type, obj.manifest,
                        session=s)
    if got and got != obj.digest:
        raise SeedError(f"registry digest {got} != {obj.digest} for {repo}:{tag}")
    return obj.digest
