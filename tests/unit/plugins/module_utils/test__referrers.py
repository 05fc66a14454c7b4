# -*- coding: utf-8 -*-
# Copyright: contributors to imagepusher.registry
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""_referrers: discovery (Referrers API, tag-schema index, cosign tags, referrers of referrers), the
merge of a target's tag-schema index, and the copy of an image's referrers through _copy.with_referrers."""

import json

import pytest

from ansible_collections.imagepusher.registry.plugins.module_utils import _copy
from ansible_collections.imagepusher.registry.plugins.module_utils import _media_types as mt
from ansible_collections.imagepusher.registry.plugins.module_utils import _referrers
from ansible_collections.imagepusher.registry.plugins.module_utils._cache import Cache
from ansible_collections.imagepusher.registry.plugins.module_utils._endpoints import RegistryEndpoint
from ansible_collections.imagepusher.registry.plugins.module_utils._manifest import Descriptor, parse
from ansible_collections.imagepusher.registry.plugins.module_utils._reference import ImageReference

from tests.unit.plugins.module_utils.fake_registry import FakeRegistryClient
from tests.unit.plugins.module_utils.tree_builders import Store, desc

SOURCE = ImageReference.parse("src.test/team/app:v1")
TARGET = ImageReference.parse("reg.test/prod/app:v1")
SIG_TYPE = "application/vnd.dev.sigstore.bundle.v0.3+json"
SBOM_TYPE = "application/spdx+json"


class ApiRegistryClient(FakeRegistryClient):
    """A fake registry with the Referrers API: it lists what was pushed with a `subject`."""

    def get_referrers(self, repository, digest, scopes=None):
        self._call("get_referrers", repository, digest)
        listed = []
        for raw, media_type in self.repo(repository).manifests.values():
            manifest = parse(raw, media_type)
            if manifest.subject is not None and manifest.subject.digest == digest:
                listed.append(Descriptor(media_type, manifest.digest, len(raw), annotations=manifest.annotations,
                                         artifact_type=manifest.artifact_type))
        return listed


class OldRegistryClient(FakeRegistryClient):
    """Distribution 2.8: no Referrers API (404)."""

    def get_referrers(self, repository, digest, scopes=None):
        self._call("get_referrers", repository, digest)
        return None


def artifact(store, subject, artifact_type, content):
    """An OCI 1.1 artifact manifest attached to `subject` (a Manifest)."""
    empty = store.blob(b"{}")
    document = {"schemaVersion": 2, "mediaType": mt.OCI_MANIFEST, "artifactType": artifact_type,
                "config": desc(mt.OCI_EMPTY, empty), "layers": [desc(artifact_type, store.blob(content))],
                "subject": desc(subject.media_type, subject.raw)}
    return store.add(json.dumps(document).encode())


def tag_schema_index(store, referrers):
    entries = [desc(r.media_type, r.raw, artifactType=r.artifact_type) for r in referrers]
    return store.add(json.dumps({"schemaVersion": 2, "mediaType": mt.OCI_INDEX, "manifests": entries}).encode())


def signed_image(client_class=OldRegistryClient):
    """A source holding an image, a signature and an SBOM on it, a signature on the SBOM and a cosign .sig tag."""
    store = Store()
    image = store.image("amd64", [b"app layer"])
    signature, sbom = artifact(store, image, SIG_TYPE, b"signature"), artifact(store, image, SBOM_TYPE, b"sbom")
    sbom_signature = artifact(store, sbom, SIG_TYPE, b"signature of the sbom")
    cosign = store.image("amd64", [b"cosign simple signing"])
    client = client_class("src.test")
    client.publish("team/app", "v1", store, image)
    repo = client.repo("team/app")
    if client_class is OldRegistryClient:
        for subject, listed in ((image, [signature, sbom]), (sbom, [sbom_signature])):
            index = tag_schema_index(store, listed)
            client.publish("team/app", _referrers.fallback_tag(subject.digest), store, index)
    repo.manifests[cosign.digest] = (cosign.raw, cosign.media_type)
    repo.tags[_referrers.fallback_tag(image.digest) + ".sig"] = cosign.digest
    return client, image, dict(signature=signature, sbom=sbom, sbom_signature=sbom_signature, cosign=cosign)


def test_fallback_tag():
    assert _referrers.fallback_tag("sha256:" + "ab" * 32) == "sha256-" + "ab" * 32


@pytest.mark.parametrize("client_class, how", [(OldRegistryClient, _referrers.TAG_SCHEMA),
                                               (ApiRegistryClient, _referrers.API)])
def test_discover_finds_referrers_of_referrers_and_cosign_tags(client_class, how):
    client, image, parts = signed_image(client_class)
    found = _referrers.discover(RegistryEndpoint(client, SOURCE), image.digest)
    by_digest = dict((f.descriptor.digest, f) for f in found)
    assert sorted(by_digest) == sorted(p.digest for p in parts.values())
    assert by_digest[parts["sbom_signature"].digest].subject == parts["sbom"].digest
    assert by_digest[parts["sbom_signature"].digest].how == how
    assert by_digest[parts["signature"].digest].descriptor.artifact_type == SIG_TYPE
    cosign = by_digest[parts["cosign"].digest]
    assert (cosign.how, cosign.tag) == (_referrers.COSIGN_TAG, _referrers.fallback_tag(image.digest) + ".sig")
    # level by level: the image's own referrers come before the SBOM's signature
    assert [f.descriptor.digest for f in found].index(parts["sbom_signature"].digest) == len(found) - 1


def test_discover_stops_at_the_depth_bound():
    client, image, parts = signed_image()
    found = _referrers.discover(RegistryEndpoint(client, SOURCE), image.digest, depth=1)
    assert parts["sbom_signature"].digest not in set(f.descriptor.digest for f in found)
    assert len(found) == 3


def test_discover_an_image_with_nothing_attached():
    store = Store()
    image = store.image("amd64", [b"plain"])
    client = OldRegistryClient("src.test")
    client.publish("team/app", "v1", store, image)
    assert _referrers.discover(RegistryEndpoint(client, SOURCE), image.digest) == []


def test_merged_index_creates_an_index_when_there_is_none():
    one = Descriptor(mt.OCI_MANIFEST, "sha256:" + "1" * 64, 10, artifact_type=SIG_TYPE)
    raw, added = _referrers.merged_index(None, [one])
    assert added == [one.digest]
    document = json.loads(raw)
    assert document == {"schemaVersion": 2, "mediaType": mt.OCI_INDEX, "manifests": [one.to_dict()]}


def test_merged_index_keeps_what_the_target_lists_and_appends_the_rest():
    kept = {"mediaType": mt.OCI_MANIFEST, "digest": "sha256:" + "0" * 64, "size": 5, "annotations": {"x": "y"}}
    current = parse(json.dumps({"schemaVersion": 2, "mediaType": mt.OCI_INDEX, "manifests": [kept]}).encode())
    one = Descriptor(mt.OCI_MANIFEST, "sha256:" + "1" * 64, 10)
    same = Descriptor(mt.OCI_MANIFEST, kept["digest"], 5)
    raw, added = _referrers.merged_index(current, [same, one, one])
    assert added == [one.digest]
    assert json.loads(raw)["manifests"] == [kept, one.to_dict()]
    assert _referrers.merged_index(current, [same]) == (None, [])


@pytest.fixture
def cache(tmp_path):
    return Cache(str(tmp_path / "cache"))


def mirror_with_referrers(source, target, cache, check_mode=False):
    copy = _copy.mirror(source, SOURCE, target, TARGET, cache)
    return _copy.with_referrers(copy, copy.run(SOURCE, None, check_mode=check_mode), check_mode)


def test_with_referrers_copies_them_by_digest_and_writes_the_tag_schema_index(cache):
    source, image, parts = signed_image()
    target = OldRegistryClient("reg.test")
    unrelated = Descriptor(mt.OCI_MANIFEST, "sha256:" + "9" * 64, 3, artifact_type="application/x-other")
    seeded, _added = _referrers.merged_index(None, [unrelated])
    target.repo("prod/app").manifests[parse(seeded).digest] = (seeded, mt.OCI_INDEX)
    target.repo("prod/app").tags[_referrers.fallback_tag(image.digest)] = parse(seeded).digest

    checked = mirror_with_referrers(source, target, cache, check_mode=True)
    assert [r["changed"] for r in checked["referrers"]] == [True] * 4
    assert target.repo("prod/app").tags[_referrers.fallback_tag(image.digest)] == parse(seeded).digest

    result = mirror_with_referrers(source, target, cache)
    assert result["changed"] is True and len(result["referrers"]) == 4
    repo = target.repo("prod/app")
    for part in parts.values():
        assert repo.manifests[part.digest][0] == part.raw  # bytes and digests kept
    assert repo.tags[_referrers.fallback_tag(image.digest) + ".sig"] == parts["cosign"].digest
    listed = parse(repo.manifests[repo.tags[_referrers.fallback_tag(image.digest)]][0])
    assert [d.digest for d in listed.manifests] == [unrelated.digest, parts["signature"].digest, parts["sbom"].digest]
    below = parse(repo.manifests[repo.tags[_referrers.fallback_tag(parts["sbom"].digest)]][0])
    assert [d.digest for d in below.manifests] == [parts["sbom_signature"].digest]
    rows = dict((r["digest"], r) for r in result["referrers"])
    assert rows[parts["cosign"].digest]["found"] == _referrers.COSIGN_TAG
    assert rows[parts["signature"].digest]["artifact_type"] == SIG_TYPE
    assert rows[parts["sbom_signature"].digest]["subject"] == parts["sbom"].digest
    assert result["bytes_uploaded"] > 0

    again = mirror_with_referrers(source, target, cache)
    assert again["changed"] is False and [r["changed"] for r in again["referrers"]] == [False] * 4
    assert not [c for c in target.seen("put_manifest")
                if c[2] == _referrers.fallback_tag(image.digest)][1:]  # written once


def test_a_target_with_the_referrers_api_gets_no_tag_schema_index(cache):
    source, image, parts = signed_image(ApiRegistryClient)
    target = ApiRegistryClient("reg.test")
    result = mirror_with_referrers(source, target, cache)
    assert result["changed"] is True and len(result["referrers"]) == 4
    assert _referrers.fallback_tag(image.digest) not in target.repo("prod/app").tags
    assert sorted(d.digest for d in target.get_referrers("prod/app", image.digest)) == sorted(
        [parts["signature"].digest, parts["sbom"].digest])
    assert mirror_with_referrers(source, target, cache)["changed"] is False


def test_a_tag_schema_tag_holding_an_image_is_never_overwritten(cache):
    source, image, _parts = signed_image()
    target = OldRegistryClient("reg.test")
    store = Store()
    squatter = store.image("amd64", [b"someone else's image"])
    target.publish("prod/app", _referrers.fallback_tag(image.digest), store, squatter)
    mirror_with_referrers(source, target, cache)
    assert target.repo("prod/app").tags[_referrers.fallback_tag(image.digest)] == squatter.digest


class QuietHeadsClient(OldRegistryClient):
    """A registry whose HEADs send no Docker-Content-Digest."""

    def head_manifest(self, repository, ref, scopes=None):
        head = super(QuietHeadsClient, self).head_manifest(repository, ref, scopes)
        return dict(head, digest=None, size=None) if head else None


def test_a_cosign_tag_whose_head_names_no_digest_is_read():
    client, image, parts = signed_image(QuietHeadsClient)
    cosign = [f for f in _referrers.attached(RegistryEndpoint(client, SOURCE), image.digest)
              if f.how == _referrers.COSIGN_TAG]
    assert [(f.descriptor.digest, f.descriptor.size) for f in cosign] == [(parts["cosign"].digest, len(parts["cosign"].raw))]


def test_add_to_counts_the_referrers_with_the_image():
    result = {"changed": False, "bytes_downloaded": 5, "bytes_uploaded": 7}
    copied = {"referrers": [{"digest": "sha256:" + "1" * 64}], "changed": True, "bytes_downloaded": 10,
              "bytes_uploaded": 20}
    assert _referrers.add_to(result, copied) == {"changed": True, "bytes_downloaded": 15, "bytes_uploaded": 27,
                                                 "referrers": copied["referrers"]}
