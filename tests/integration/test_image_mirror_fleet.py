"""image_mirror over a fleet: images in parallel, each shared blob downloaded once and uploaded once
per target registry (mounted into the other repositories), counted in the registries' access logs."""

from __future__ import annotations

import hashlib
from pathlib import Path
from urllib.parse import unquote

from tests.support import images, seed
from tests.support.checks import play, raw_manifest, skopeo
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


def test_a_new_repository_gets_no_blob_head_once_the_target_honoured_a_mount_and_an_old_one_does(ansible, tmp_path):
    """x and y share a base: y's mount of it shows the target honours mounts. Then:

    - mirror/z has no tag (a run that died before its first tag left the blob `held` in it): the registry
      does not know the repository, so z's blobs get no HEAD. The POST that starts each upload asks to mount
      the blob from mirror/z itself, which holds `held`: that one is never sent.
    - mirror/w has a tag, whose layer `kept` w shares: every blob of w gets a HEAD (a mount of `kept` would
      rewrite the repository's link to it while a manifest PUT may read it), and `kept` is not written.
    - mirror/v is new and shares the base too: no HEAD either, the base is mounted from mirror/x at once.
    """
    with Registry() as source, Registry() as target:
        base, held = images.random_layer(1, seed=77), images.tar_layer({"held": b"h" * 100})
        kept = images.tar_layer({"kept": b"k" * 100})
        built = {"x": images.build_image([base, images.tar_layer({"x": b"x"})]),
                 "y": images.build_image([base, images.tar_layer({"y": b"y"})]),
                 "z": images.build_image([held, images.tar_layer({"z": b"z"})]),
                 "w": images.build_image([kept, images.tar_layer({"w": b"w"})]),
                 "v": images.build_image([base, images.tar_layer({"v": b"v"})])}
        for name, image in built.items():
            seed.push(source.url, "probe/" + name, image, "v1")
        held_digest = built["z"].parsed["layers"][0]["digest"]
        kept_digest = built["w"].parsed["layers"][0]["digest"]
        seed.push_blob(target.url, "mirror/z", held_digest, built["z"].blobs[held_digest])
        seed.push(target.url, "mirror/w", images.build_image([kept]), "old")
        args = {"images": [{"source": f"{source.host}/probe/{n}:v1", "target": f"{target.host}/mirror/{n}:v1"}
                           for n in built],
                "image_concurrency": 1, "cache_dir": str(tmp_path / "cache")}

        def mirror(check):
            mark = target.mark()
            run = ansible.run_module("image_mirror", args, check=check, diff=True)
            assert run.rc == 0, run.msg
            logs = dict((name, [(e.method, e.path.split("/blobs/")[-1], unquote(e.query), e.status)
                                for e in target.access_log(since=mark) if e.path.startswith(f"/v2/mirror/{name}/")
                                and "/blobs/" in e.path]) for name in ("z", "w", "v"))
            listed = [e.path for e in target.access_log(since=mark) if e.path.endswith("/tags/list")]
            return run, logs, listed

        checked, check_logs, check_listed = mirror(check=True)
        real, real_logs, real_listed = mirror(check=False)
        again_checked, again_check_logs, _listed = mirror(check=True)
        again, again_logs, again_listed = mirror(check=False)
        # A third party reads back exactly the source bytes, and z's blobs verify against their digests.
        manifests = dict((name, raw_manifest(f"{target.host}/mirror/{name}:v1")) for name in built)
        skopeo("copy", "--src-tls-verify=false", f"docker://{target.host}/mirror/z:v1", f"oci:{tmp_path / 'z'}:v1")

    def blobs_of(name):
        return [built[name].parsed["config"]["digest"]] + [layer["digest"] for layer in built[name].parsed["layers"]]

    z_blobs, w_blobs, v_blobs = blobs_of("z"), blobs_of("w"), blobs_of("v")
    base_digest = built["v"].parsed["layers"][0]["digest"]
    # Check mode asks a HEAD for each blob, lists no tags and moves nothing.
    assert sorted(check_logs["z"]) == sorted(("HEAD", d, "", 200 if d == held_digest else 404) for d in z_blobs)
    assert sorted(check_logs["w"]) == sorted(("HEAD", d, "", 200 if d == kept_digest else 404) for d in w_blobs)
    assert check_listed == []
    # The real run: mirror/z is new (one tag list each for z and w; x and y ran before mounts were known).
    assert sorted(real_listed) == ["/v2/mirror/v/tags/list", "/v2/mirror/w/tags/list", "/v2/mirror/z/tags/list"]
    assert not [e for e in real_logs["z"] if e[0] == "HEAD"], real_logs["z"]
    probes = sorted((e[2], e[3]) for e in real_logs["z"] if e[0] == "POST")
    assert probes == sorted(("mount=%s&from=mirror/z" % d, 201 if d == held_digest else 202) for d in z_blobs)
    sent = [e for e in real_logs["z"] if e[0] in ("PUT", "PATCH")]
    assert len(sent) == 2 and not [e for e in sent if held_digest in e[2]], real_logs["z"]
    # mirror/v is new: no HEAD, the base mounted from mirror/x (x uploaded it), v's own blobs asked by their POSTs.
    assert not [e for e in real_logs["v"] if e[0] == "HEAD"], real_logs["v"]
    probes = sorted((e[2], e[3]) for e in real_logs["v"] if e[0] == "POST")
    assert probes == sorted([("mount=%s&from=mirror/x" % base_digest, 201)]
                            + [("mount=%s&from=mirror/v" % d, 202) for d in v_blobs if d != base_digest]), real_logs["v"]
    assert not [e for e in real_logs["v"] if e[0] in ("PUT", "PATCH") and base_digest in e[2]], real_logs["v"]
    # (Check mode, on an empty cache and target, could not know where the base would be: it said uploaded.)
    assert dict((b["digest"], b["action"]) for b in real.result["images"][4]["blobs"]) == dict(
        (d, "mounted" if d == base_digest else "uploaded") for d in v_blobs)
    # mirror/w had a tag: HEADs as in check mode, and nothing at all about `kept` but its HEAD.
    assert sorted(e for e in real_logs["w"] if e[0] == "HEAD") == sorted(check_logs["w"])
    assert [e for e in real_logs["w"] if kept_digest in e[1] + e[2]] == [("HEAD", kept_digest, "", 200)]
    for name, expected in (("z", held_digest), ("w", kept_digest)):
        index = list(built).index(name)
        planned, done = checked.result["images"][index], real.result["images"][index]
        for result in (planned, done):
            assert dict((b["digest"], b["action"]) for b in result["blobs"]) == dict(
                (d, "exists" if d == expected else "uploaded") for d in blobs_of(name))
        assert planned["bytes_uploaded"] == done["bytes_uploaded"]
    assert checked.changed and real.changed
    assert real.result["diff"] == checked.result["diff"]
    assert real.result["diff"]["after"] != real.result["diff"]["before"]
    assert dict((n, "sha256:" + hashlib.sha256(raw).hexdigest()) for n, raw in manifests.items()) == dict(
        (n, image.digest) for n, image in built.items())
    # Then everything is current: one HEAD per tag, no blob request, no tag list, unchanged in both modes.
    assert not again_checked.changed and not again.changed
    assert again.result["diff"]["after"] == again.result["diff"]["before"] == real.result["diff"]["after"]
    assert again_check_logs == again_logs == {"z": [], "w": [], "v": []} and again_listed == []
