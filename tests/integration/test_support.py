"""Self-tests of tests/support against the REAL tools (registry, skopeo, ansible-playbook).

If these fail, every other integration test is meaningless, so they check what the others
take for granted: seeded bytes come back identical, skopeo agrees with our images and
layouts, the proxy really slows a download, the ansible runner finds the collection.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import socket
import subprocess
import sys
import textwrap
import time

import pytest
import requests

from tests.support import REPO_ROOT, images, registry as registry_mod, seed
from tests.support.registry import Registry
from tests.support.throttle_proxy import MiB, ThrottleProxy


def skopeo(*args: str) -> str:
    proc = subprocess.run(["skopeo", *args], capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 0, f"skopeo {' '.join(args)} failed:\n{proc.stderr}"
    return proc.stdout


# -- images.py -------------------------------------------------------------------------------
def test_images_are_deterministic_across_processes():
    code = ("from tests.support import images as i; print(i.oci_single().digest, "
            "i.docker_v2().digest, i.multi_arch_index().digest, i.large_image(2).digest)")
    runs = {subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                           cwd=REPO_ROOT, check=True).stdout for _attempt in range(2)}
    assert len(runs) == 1
    here = f"{images.oci_single().digest} {images.docker_v2().digest} " \
           f"{images.multi_arch_index().digest} {images.large_image(2).digest}\n"
    assert runs == {here}


@pytest.mark.parametrize("build", [images.oci_single, images.docker_v2, images.large_image])
def test_image_config_matches_layers(build):
    img = build()
    cfg = json.loads(img.config.data)
    assert (cfg["os"], cfg["architecture"]) == ("linux", "amd64")
    assert {"Env", "Cmd", "Labels"} <= cfg["config"].keys()
    diff_ids = []
    for layer in img.layers:
        raw = gzip.decompress(layer.data) if layer.media_type.endswith("gzip") else layer.data
        diff_ids.append("sha256:" + hashlib.sha256(raw).hexdigest())
    assert cfg["rootfs"] == {"type": "layers", "diff_ids": diff_ids}
    manifest = img.parsed
    assert manifest["mediaType"] == img.media_type
    assert manifest["config"] == img.config.descriptor()
    assert b"\n   " in img.manifest  # indent=3: any re-serialization changes the digest


def test_multi_arch_index_shares_one_layer():
    idx = images.multi_arch_index()
    assert [m["platform"] for m in idx.parsed["manifests"]] == list(images.MULTI_PLATFORMS)
    first_layers = {img.layers[0].digest for img in idx.images}
    assert len(first_layers) == 1  # shared by all three platforms
    assert len({img.layers[1].digest for img in idx.images}) == 3
    assert len(idx.blobs) == 1 + 3 + 3  # shared layer, own layers, configs
    assert idx.image_for("arm64", variant="v8").platform["variant"] == "v8"


def test_large_image_layer_is_incompressible_and_sized():
    img = images.large_image(4)
    big = img.layers[0]
    assert big.media_type == images.OCI_LAYER_TAR
    assert 4 * MiB < big.size < 4 * MiB + 10_000
    assert len(gzip.compress(big.data[:MiB], 1)) > 0.99 * MiB


# -- registry.py + seed.py ---------------------------------------------------------------------
def test_seeded_manifests_come_back_byte_identical(registry, samples):
    for s in samples.values():
        for digest, (media_type, data) in s.obj.manifests.items():
            ref = s.tag if digest == s.obj.digest else digest
            r = requests.get(f"{registry.url}/v2/{s.repo}/manifests/{ref}",
                             headers={"Accept": media_type}, timeout=10)
            assert r.status_code == 200, (s.name, ref, r.text)
            assert r.content == data, (s.name, ref)
            assert r.headers["Content-Type"] == media_type
            assert r.headers["Docker-Content-Digest"] == digest


def test_seeded_blobs_are_complete(registry, samples):
    for s in samples.values():
        for digest, data in s.obj.blobs.items():
            r = requests.get(f"{registry.url}/v2/{s.repo}/blobs/{digest}", timeout=30)
            assert r.status_code == 200
            assert len(r.content) == len(data)
            assert "sha256:" + hashlib.sha256(r.content).hexdigest() == digest


def test_seed_skips_existing_blobs_and_access_log_counts(registry, samples):
    s = samples["oci_single"]
    mark = registry.mark()
    seed.push(registry.url, s.repo, s.obj, s.tag)
    log = registry.access_log(since=mark)
    assert [e.method for e in log if "/blobs/" in e.path] == ["HEAD"] * len(s.obj.blobs)
    assert all(e.status == 200 for e in log if e.method == "HEAD")
    puts = registry.requests("PUT", "/manifests/", since=mark)
    assert [(p.path.rsplit("/", 1)[1], p.status) for p in puts] == [(s.tag, 201)]


def test_registry_retries_when_port_is_taken(monkeypatch):
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen(1)
    ports = iter([taken.getsockname()[1]])
    real = registry_mod.free_port
    monkeypatch.setattr(registry_mod, "free_port", lambda: next(ports, None) or real())
    try:
        with Registry() as reg:
            assert reg.port != taken.getsockname()[1]
            assert requests.get(reg.url + "/v2/", timeout=5).status_code == 200
            workdir = reg.workdir
    finally:
        taken.close()
    assert not workdir.exists()  # stop() cleaned up


def test_registry_with_htpasswd_auth_and_basic_seed(tmp_path):
    bcrypt = pytest.importorskip("bcrypt")
    htpasswd = tmp_path / "htpasswd"
    htpasswd.write_bytes(b"alice:" + bcrypt.hashpw(b"s3cret", bcrypt.gensalt(rounds=4)) + b"\n")
    auth = {"auth": {"htpasswd": {"realm": "test", "path": str(htpasswd)}}}
    with Registry(config=auth) as reg:
        assert requests.get(reg.url + "/v2/", timeout=5).status_code == 401
        img = images.oci_single()
        assert seed.push(reg.url, "private/app", img, "v1", auth=("alice", "s3cret")) == img.digest
        r = requests.get(f"{reg.url}/v2/private/app/manifests/v1", auth=("alice", "s3cret"),
                         headers={"Accept": img.media_type}, timeout=5)
        assert r.content == img.manifest
        assert requests.head(f"{reg.url}/v2/private/app/manifests/v1", timeout=5).status_code == 401
        assert [e.status for e in reg.requests("PUT")] == [201] * (len(img.blobs) + 1)


# -- skopeo reads what we made -----------------------------------------------------------------
def test_skopeo_reads_seeded_index_raw(samples):
    s = samples["multi"]
    raw = skopeo("inspect", "--raw", "--tls-verify=false", f"docker://{s.ref}")
    assert raw.encode() == s.obj.manifest


def test_skopeo_inspects_docker_v2(samples):
    s = samples["docker_v2"]
    info = json.loads(skopeo("inspect", "--tls-verify=false", f"docker://{s.ref}"))
    assert info["Digest"] == s.digest
    assert info["Architecture"] == "amd64" and info["Os"] == "linux"
    assert info["Labels"] == {"sample": "docker-v2"}
    assert info["Layers"] == [layer.digest for layer in s.obj.layers]


def test_oci_layout_readable_by_skopeo(tmp_path):
    img, idx = images.oci_single(), images.multi_arch_index()
    ref = "127.0.0.1:5000/test/app:v1"
    layout = images.write_oci_layout(tmp_path / "layout", {ref: img, "multi": idx})
    info = json.loads(skopeo("inspect", f"oci:{layout}:{ref}"))
    assert info["Digest"] == img.digest
    assert info["Layers"] == [layer.digest for layer in img.layers]
    assert skopeo("inspect", "--raw", f"oci:{layout}:multi").encode() == idx.manifest
    index = json.loads((layout / "index.json").read_text())
    names = [m["annotations"][images.REF_NAME_ANNOTATION] for m in index["manifests"]]
    assert names == [ref, "multi"]


# -- throttle_proxy.py --------------------------------------------------------------------------
def test_throttle_proxy_slows_downloads(registry, samples):
    s = samples["large"]
    big = s.obj.layers[0]
    path = f"/v2/{s.repo}/blobs/{big.digest}"
    headers = {"Range": f"bytes=0-{4 * MiB - 1}"}
    with ThrottleProxy("127.0.0.1", registry.port, rate=4 * MiB) as proxy:
        start = time.monotonic()
        r = requests.get(proxy.url + path, headers=headers, timeout=30)
        elapsed = time.monotonic() - start
        assert r.status_code == 206
        assert r.content == big.data[:4 * MiB]
        assert proxy.bytes_down >= 4 * MiB
        assert 0.85 <= elapsed < 5, elapsed  # 4 MiB at 4 MiB/s is ~1 s

        proxy.rate = None  # lifted at run time
        start = time.monotonic()
        r = requests.get(proxy.url + path, headers=headers, timeout=30)
        assert r.content == big.data[:4 * MiB]
        assert time.monotonic() - start < 2  # generous: CI machines can be busy
        assert proxy.connections == 2


# -- ansible.py -------------------------------------------------------------------------------
@pytest.mark.ansible
def test_ansible_runs_a_collection_module_through_the_symlink(tmp_path):
    """A throwaway collection proves the mechanics: ANSIBLE_COLLECTIONS_PATH + symlink,
    module_utils imported by their ansible_collections name, results via the callback."""
    from tests.support.ansible import AnsibleWorkspace

    src = tmp_path / "fake-collection"
    (src / "plugins" / "modules").mkdir(parents=True)
    (src / "plugins" / "module_utils").mkdir()
    (src / "plugins" / "module_utils" / "_shout.py").write_text(
        "def shout(s):\n    return s.upper()\n")
    (src / "plugins" / "modules" / "echo.py").write_text(textwrap.dedent("""\
        from ansible.module_utils.basic import AnsibleModule
        from ansible_collections.imagepusher.registry.plugins.module_utils._shout import shout
        import requests  # lives in the venv: proves ansible_python_interpreter
        m = AnsibleModule({"text": {"type": "str"}, "secret": {"type": "str", "no_log": True}},
                          supports_check_mode=True)
        m.exit_json(changed=not m.check_mode, text=shout(m.params["text"]),
                    check=m.check_mode)
        """))
    with AnsibleWorkspace(tmp_path / "ws", collection_src=src) as ws:
        m = ws.run_module("echo", {"text": "hi", "secret": "hunter2"}, check=True)
        assert m.rc == 0, m.run.output
        assert (m.status, m.result["text"], m.result["check"]) == ("ok", "HI", True)
        assert "hunter2" not in json.dumps(m.result)  # no_log honoured in what we record

        play = textwrap.dedent("""\
            - hosts: localhost
              tasks:
                - name: echo
                  imagepusher.registry.echo: {text: "{{ word }}"}
                - name: fail on purpose
                  ansible.builtin.fail: {msg: boom}
            """)
        run = ws.run_playbook(play, {"word": "yes"})
        rc, out, err = run
        assert rc == 2
        assert run.task("echo").status == "changed" and run.task("echo").result["text"] == "YES"
        assert run.task("fail on purpose").failed
        assert "boom" in out


@pytest.mark.ansible
def test_ansible_playbook_can_be_killed_mid_run(ansible):
    play = textwrap.dedent("""\
        - hosts: localhost
          tasks:
            - {name: first, ansible.builtin.debug: {msg: started}}
            - {name: long, ansible.builtin.command: sleep 60}
        """)
    proc = ansible.start_playbook(play, timeout=60)
    deadline = time.monotonic() + 30
    while not any(r["task"] == "first" for r in proc.results()):
        assert time.monotonic() < deadline, "first task never reported"
        time.sleep(0.1)
    time.sleep(0.5)  # let `sleep 60` start
    proc.kill()
    run = proc.wait(timeout=10)
    assert run.rc == -9
    assert [r["task"] for r in run.results] == ["first"]
    assert run.duration < 30


def test_registry_with_tls(tmp_path):
    """http.tls merged into the config: the registry serves https and ``url`` follows."""
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
            .sign(key, hashes.SHA256()))
    crt, pem = tmp_path / "tls.crt", tmp_path / "tls.key"
    crt.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    pem.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                      serialization.PrivateFormat.PKCS8,
                                      serialization.NoEncryption()))
    with Registry(config={"http": {"tls": {"certificate": str(crt), "key": str(pem)}}}) as reg:
        assert reg.url.startswith("https://127.0.0.1:")
        assert requests.get(reg.url + "/v2/", verify=str(crt), timeout=5).status_code == 200
        img = images.docker_v2()
        assert seed.push(reg.url, "tls/app", img, "v1", verify=str(crt)) == img.digest
