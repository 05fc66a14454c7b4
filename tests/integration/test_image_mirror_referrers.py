"""image_mirror referrers: what is attached to an image (seeded with raw API calls) reaches the target."""

from __future__ import annotations

import hashlib
from pathlib import Path

import requests

from tests.support import artifacts, images, seed
from tests.support.checks import play, raw_manifest
from tests.support.registry import Registry

TARGET = Path(__file__).parent / "targets" / "image_mirror_referrers" / "tasks" / "main.yml"


def signed_source(url: str) -> dict:
    """An image, a signature and an SBOM on it, a signature on the SBOM, a cosign .sig tag: their objects."""
    image = images.oci_single()
    seed.push(url, "signed/app", image, "v1")
    signature = artifacts.artifact(image, artifacts.SIG_TYPE, b"signature of the image")
    sbom = artifacts.artifact(image, artifacts.SBOM_TYPE, b'{"spdxVersion": "SPDX-2.3"}')
    sbom_signature = artifacts.artifact(sbom, artifacts.SIG_TYPE, b"signature of the sbom")
    cosign = artifacts.cosign_signature()
    for item in (signature, sbom, sbom_signature):
        artifacts.push_artifact(url, "signed/app", item)
    artifacts.push_tag_schema_index(url, "signed/app", image.digest, [signature, sbom])
    artifacts.push_tag_schema_index(url, "signed/app", sbom.digest, [sbom_signature])
    artifacts.push_artifact(url, "signed/app", cosign, tag=artifacts.fallback_tag(image.digest) + ".sig")
    return dict(image=image, signature=signature, sbom=sbom, sbom_signature=sbom_signature, cosign=cosign)


def manifest_bytes(url: str, repo: str, ref: str) -> bytes:
    response = requests.get(f"{url}/v2/{repo}/manifests/{ref}", timeout=30,
                            headers={"Accept": f"{artifacts.OCI_INDEX}, {artifacts.OCI_MANIFEST}"})
    assert response.status_code == 200, (ref, response.status_code)
    return response.content


def test_image_mirror_referrers_target(ansible, tmp_path):
    with Registry() as source, Registry() as target:
        parts = signed_source(source.url)
        # The target already lists something else for the image: it must be kept.
        unrelated = artifacts.artifact(parts["image"], "application/x-unrelated", b"placed by someone else")
        artifacts.push_artifact(target.url, "mirror/app", unrelated)
        artifacts.push_tag_schema_index(target.url, "mirror/app", parts["image"].digest, [unrelated])
        digests = {name: obj.digest for name, obj in parts.items()}
        cosign_tag = artifacts.fallback_tag(parts["image"].digest) + ".sig"
        variables = {"source_registry": source.host, "target_registry": target.host, "cache_root": str(tmp_path),
                     "digests": digests, "sig_type": artifacts.SIG_TYPE, "cosign_tag": cosign_tag,
                     "referrer_digests": [d for name, d in digests.items() if name != "image"]}
        run = ansible.run_playbook(play({"ansible.builtin.include_tasks": str(TARGET)}), variables, timeout=600)
        assert run.rc == 0, run.output
        # Digests preserved: a third party reads back exactly the source's bytes.
        for name in ("signature", "sbom", "sbom_signature"):
            assert manifest_bytes(target.url, "mirror/app", digests[name]) == parts[name].manifest
        assert hashlib.sha256(raw_manifest(f"{target.host}/mirror/app:{cosign_tag}")).hexdigest() == \
            digests["cosign"].split(":")[1]
        # The tag-schema indexes: merged (the unrelated descriptor kept, first) and written.
        merged = manifest_bytes(target.url, "mirror/app", artifacts.fallback_tag(digests["image"]))
        assert artifacts.listed_digests(merged) == [unrelated.digest, digests["signature"], digests["sbom"]]
        below = manifest_bytes(target.url, "mirror/app", artifacts.fallback_tag(digests["sbom"]))
        assert artifacts.listed_digests(below) == [digests["sbom_signature"]]
        # Written once: the second real run and both check runs put no tag-schema index.
        puts = [e for e in target.access_log() if e.method == "PUT"
                and e.path == f"/v2/mirror/app/manifests/{artifacts.fallback_tag(digests['image'])}"]
        assert len(puts) == 2  # the seeding and the first real run


ROLE_PLAY = """
- name: mirror_images with referrers
  hosts: localhost
  gather_facts: false
  tasks:
    - name: role-wide referrers, one entry turning them off
      ansible.builtin.include_role:
        name: imagepusher.registry.mirror_images
      vars:
        mirror_images_cache_dir: "{{ cache_root }}/role"
        mirror_images_referrers: true
        mirror_images_list:
          - source: "{{ source_registry }}/signed/app:v1"
            target: "{{ target_registry }}/role/app:v1"
          - source: "{{ source_registry }}/signed/app:v1"
            target: "{{ target_registry }}/role-off/app:v1"
            referrers: false
    - name: keep the results
      ansible.builtin.set_fact:
        first_results: "{{ mirror_images_results }}"
    - name: again
      ansible.builtin.include_role:
        name: imagepusher.registry.mirror_images
      vars:
        mirror_images_cache_dir: "{{ cache_root }}/role"
        mirror_images_referrers: true
        mirror_images_list:
          - source: "{{ source_registry }}/signed/app:v1"
            target: "{{ target_registry }}/role/app:v1"
          - source: "{{ source_registry }}/signed/app:v1"
            target: "{{ target_registry }}/role-off/app:v1"
            referrers: false
    - name: check
      ansible.builtin.assert:
        that:
          - first_results[0].referrers | length == 4
          - "'referrers' not in first_results[1]"
          - first_results | map(attribute='pushed') | list == [true, true]
          - mirror_images_results | map(attribute='pushed') | list == [false, false]
          - mirror_images_results[0].referrers | map(attribute='changed') | unique == [false]
        fail_msg: "{{ [first_results, mirror_images_results] | to_json }}"
"""


def test_mirror_images_role_passes_referrers(ansible, tmp_path):
    with Registry() as source, Registry() as target:
        parts = signed_source(source.url)
        run = ansible.run_playbook(ROLE_PLAY, {"source_registry": source.host, "target_registry": target.host,
                                               "cache_root": str(tmp_path)}, timeout=600)
        assert run.rc == 0, run.output
        assert manifest_bytes(target.url, "role/app", parts["sbom_signature"].digest) == parts["sbom_signature"].manifest
        assert requests.get(f"{target.url}/v2/role-off/app/manifests/{parts['signature'].digest}",
                            timeout=30).status_code == 404
