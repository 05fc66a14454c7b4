"""image_mirror over a fleet: images in parallel, each shared blob downloaded once and uploaded once
per target registry (mounted into the other repositories), counted in the registries' access logs."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import unquote

from tests.support import images, seed
from tests.support.checks import play
from tests.support.registry import Registry

TARGET = Path(__file__).parent / "targets" / "image_mirror_fleet" / "tasks" / "main.yml"
REPOS, TAGS = 3, 2


def build_fleet(source):
    """REPOS x TAGS images sharing one base layer, each with a small layer of its own."""
    base = images.random_layer(1, seed=4242)
    built = {}
    for repo in range(REPOS):
        for tag in range(TAGS):
            image = images.build_image([base, images.tar_layer({"app/%d-%d" % (repo, tag): b"v" * (repo * 10 + tag + 1)})])
            seed.push(source.url, "fleet/app%d" % repo, image, "v%d" % tag)
            built[(repo, tag)] = image
    return base, built


def test_fleet_shares_blobs_across_images(ansible, tmp_path):
    with Registry() as source, Registry() as first, Registry() as second:
        base, built = build_fleet(source)
        # app0 and app1 go to the first target registry, app2 to the second.
        fleet = [{"source": f"{source.host}/fleet/app{r}:v{t}",
                  "target": f"{(first if r < 2 else second).host}/mirror/app{r}:v{t}"}
                 for r in range(REPOS) for t in range(TAGS)]
        blobs = {}
        for image in built.values():
            blobs.update(image.blobs)
        marks = [reg.mark() for reg in (source, first, second)]
        run = ansible.run_playbook(play({"ansible.builtin.include_tasks": str(TARGET)}), {
            "fleet": fleet, "fleet_digests": [built[(r, t)].digest for r in range(REPOS) for t in range(TAGS)],
            "fleet_bytes": sum(len(data) for data in blobs.values()), "base_digest": base.digest,
            "broken": {"source": f"{source.host}/fleet/app0:nope", "target": f"{first.host}/broken/app0:nope"},
            "cache_root": str(tmp_path)}, timeout=600)
        assert run.rc == 0, run.output
        source_log = source.access_log(since=marks[0])
        target_logs = {"first": first.access_log(since=marks[1]), "second": second.access_log(since=marks[2])}

    # Downloaded once in the whole playbook: check mode reads no layer, the second real run and the failure
    # case find their targets current.
    base_gets = [e for e in source_log if e.method == "GET" and e.path.endswith("/blobs/" + base.digest)]
    assert len(base_gets) == 1, [(e.method, e.path) for e in base_gets]
    # Each image's own layer too (configs are read in check mode as well, to plan).
    unique = [layer["digest"] for image in built.values() for layer in image.parsed["layers"]]
    assert all(len([e for e in source_log if e.method == "GET" and e.path.endswith("/blobs/" + d)]) <= 1 for d in unique)
    for name, log in target_logs.items():
        fleet_log = [(e.method, e.path, unquote(e.query), e.status) for e in log if "/broken/" not in e.path]
        about_base = [e for e in fleet_log if base.digest in e[1] + e[2]]
        uploads = [e for e in about_base if e[0] == "PUT" and "/blobs/uploads/" in e[1]]
        assert len(uploads) == 1, ("one upload per registry", name, about_base)
        # The other repositories of that registry mount it from the one it was uploaded into.
        uploaded_into = uploads[0][1].split("/blobs/")[0][len("/v2/"):]
        mounted_into = set(e[1].split("/blobs/")[0][len("/v2/"):] for e in about_base
                           if e[0] == "POST" and "mount=" + base.digest in e[2] and e[3] == 201)
        repos_there = ["mirror/app0", "mirror/app1"] if name == "first" else ["mirror/app2"]
        assert mounted_into == set(repos_there) - {uploaded_into}, ("mounts", name, about_base)
