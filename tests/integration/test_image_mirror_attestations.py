"""image_mirror platforms: BuildKit attestation manifests of the kept platforms stay in the narrowed index."""

from __future__ import annotations

import json
from pathlib import Path

from tests.support import images, seed
from tests.support.checks import play, raw_manifest
from tests.support.registry import Registry

TARGET = Path(__file__).parent / "targets" / "image_mirror_attestations" / "tasks" / "main.yml"
UNKNOWN = {"os": "unknown", "architecture": "unknown"}


def attested_index() -> tuple[images.Index, dict]:
    """multi_arch_index with, after each platform, an attestation manifest naming it (as BuildKit writes)."""
    platforms = images.multi_arch_index().images
    children, entries, attestation_of = [], [], {}
    for image in platforms:
        statement = images.build_image(
            [images.tar_layer({"statement.json": json.dumps({"subject": image.digest}).encode()})], platform=UNKNOWN)
        children += [image, statement]
        entries += [image.descriptor(with_platform=True),
                    dict(statement.descriptor(with_platform=True), annotations={
                        "vnd.docker.reference.type": "attestation-manifest",
                        "vnd.docker.reference.digest": image.digest})]
        attestation_of[image.digest] = statement.digest
    raw = images.dump_json({"schemaVersion": 2, "mediaType": images.OCI_INDEX, "manifests": entries}, 3)
    return images.Index(raw, images.OCI_INDEX, tuple(children)), attestation_of


def test_image_mirror_attestations_target(ansible, tmp_path):
    index, attestation_of = attested_index()
    amd64, arm64, s390x = (index.images[i] for i in (0, 2, 4))
    kept = [amd64.digest, attestation_of[amd64.digest], arm64.digest, attestation_of[arm64.digest]]
    with Registry() as source, Registry() as target:
        seed.push(source.url, "attested/app", index, "v1")
        variables = {"source_registry": source.host, "target_registry": target.host, "cache_root": str(tmp_path),
                     "source_digest": index.digest, "kept_attestations": kept[1::2]}
        run = ansible.run_playbook(play({"ansible.builtin.include_tasks": str(TARGET)}), variables, timeout=600)
        assert run.rc == 0, run.output
        narrowed = json.loads(raw_manifest(f"{target.host}/narrowed/app:v1"))
    assert [entry["digest"] for entry in narrowed["manifests"]] == kept
    assert s390x.digest not in json.dumps(narrowed) and attestation_of[s390x.digest] not in json.dumps(narrowed)
    assert narrowed["manifests"][1]["annotations"]["vnd.docker.reference.digest"] == amd64.digest
