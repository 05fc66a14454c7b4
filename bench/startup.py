"""Start-up time and baseline memory of the modules (issue 16), against ansible.builtin.ping.

    .venv/bin/python bench/startup.py [--rounds N] [--size-mb MB] [--work DIR] [--tree TREE]
    .venv/bin/python bench/startup.py --compare OLD_TREE [--rounds N]   (start-up only, before/after)

Start-up: each module is run on a tiny image its task already has (image_mirror and
image_push: the target is current; image_pull: the cache is), in check mode, so it exits
right after its imports, argument parsing, client set-up and one or two HEAD requests.
It runs as Ansible runs it: the AnsiballZ payload of a real ansible-playbook run, kept
(ANSIBLE_KEEP_REMOTE_FILES) and run again as a process, alternating with ping's payload
kept the same way. The process's wall time, CPU seconds (user + system) and peak RSS
(ru_maxrss from wait4) are reported, medians of the rounds, and our module minus ping.
Then the same through ansible-playbook: a play of one image_mirror task on the current
image against a play of one ansible.builtin.ping task, alternating, medians.

Memory: the peak RSS (VmHWM) of the module process of a cold one-pass mirror
(`image_push source=`, empty cache, fresh target registry), through ansible-playbook, for
a 4 MB image and for a --size-mb one (default 5000; built on disk layer by layer, so
building it takes no memory; seeded with skopeo; about three times its size of disk in
--work at the peak, all deleted at the end).

measure(work_dir, rounds, big_mb) -> dict is what bench/run.py calls; table(result) gives
the markdown rows.
"""

import argparse
import hashlib
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

import run as bench  # noqa: E402
from tests.support import images, seed  # noqa: E402
from tests.support.ansible import AnsibleWorkspace  # noqa: E402
from tests.support.registry import Registry  # noqa: E402

MODULES = ("image_mirror", "image_pull", "image_push")
MiB = 1 << 20

PLAY = """
- hosts: localhost
  gather_facts: false
  tasks:
"""
MIRROR_TASK = """\
    - name: image_mirror
      imagepusher.registry.image_mirror:
        images: [{source: "{{ src }}", target: "{{ dst }}"}]
        cache_dir: "{{ cache }}"
"""

# Makes what each module's check-mode task needs current (the first run of the tiny image).
PREPARE = PLAY + MIRROR_TASK + """\
    - name: image_pull
      imagepusher.registry.image_pull:
        name: "{{ src }}"
        cache_dir: "{{ cache }}"
      register: pulled
    - name: image_push
      imagepusher.registry.image_push:
        name: "{{ pulled.cache_name }}"
        target: "{{ dst }}"
        cache_dir: "{{ cache }}"
    - name: ping
      ansible.builtin.ping:
"""

# One task of our module on a current image, against one ping task.
MIRROR_CURRENT = PLAY + MIRROR_TASK

COLD_MIRROR = bench.MIRROR


def median(values):
    return statistics.median(values)


def run_payload(path):
    """(wall s, cpu s, peak RSS MB) of one run, the rusage taken from wait4 of that one process."""
    start = time.monotonic()
    proc = subprocess.Popen([sys.executable, str(path)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            stdin=subprocess.DEVNULL, cwd=str(path.parent))
    out = proc.stdout.read()
    err = proc.stderr.read()
    _pid, status, usage = os.wait4(proc.pid, 0)
    wall = time.monotonic() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    result = json.loads(out) if out.strip().startswith(b"{") else {}
    if proc.returncode != 0 or result.get("failed") or result.get("changed"):
        raise SystemExit("%s: rc %s, %s %s" % (path.name, proc.returncode, out[-2000:], err[-2000:]))
    return wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024.0


def keep_payloads(ws, variables):
    """{name: AnsiballZ payload path} of each module's check-mode task on the current image, and of ping."""
    remote = ws.root / "tmp" / "remote"
    run = ws.run_playbook(PREPARE, variables)
    if run.rc != 0:
        raise SystemExit("preparing failed:\n%s" % run.output[-4000:])
    before = set(remote.glob("*/AnsiballZ_*.py"))
    run = ws.run_playbook(PREPARE, variables, check=True, env={"ANSIBLE_KEEP_REMOTE_FILES": "1"})
    if run.rc != 0 or any(r["result"].get("changed") for r in run.results):
        raise SystemExit("the check-mode run on current images failed or changed something:\n%s" % run.output[-4000:])
    payloads = {}
    for path in set(remote.glob("*/AnsiballZ_*.py")) - before:
        payloads[path.stem[len("AnsiballZ_"):]] = path
    missing = set(MODULES + ("ping",)) - set(payloads)
    if missing:
        raise SystemExit("no payload kept for %s" % ", ".join(sorted(missing)))
    return payloads


def direct_startup(payloads, rounds):
    """{name: (wall, cpu, rss) medians} of the kept payloads, run alternately (the order turns each round)."""
    names = ["ping"] + list(MODULES)
    samples = dict((name, []) for name in names)
    for number in range(rounds):
        turn = number % len(names)
        for name in names[turn:] + names[:turn]:
            samples[name].append(run_payload(payloads[name]))
    return dict((name, tuple(median(s[i] for s in values) for i in range(3))) for name, values in samples.items())


def playbook_startup(ws, variables, rounds):
    """(ping play, image_mirror play) wall medians, alternating."""
    times = {"ping": [], "image_mirror": []}
    plays = {"ping": bench.PING, "image_mirror": MIRROR_CURRENT}
    for number in range(rounds):
        for name in (["ping", "image_mirror"] if number % 2 == 0 else ["image_mirror", "ping"]):
            start = time.monotonic()
            run = ws.run_playbook(plays[name], variables)
            times[name].append(time.monotonic() - start)
            if run.rc != 0 or run.results[-1]["result"].get("changed"):
                raise SystemExit("%s play failed or changed:\n%s" % (name, run.output[-4000:]))
    return median(times["ping"]), median(times["image_mirror"])


# -- a big image, built on disk ----------------------------------------------------------------

class _RandomFile:
    """`size` bytes from random.Random(seed), read like a file (tarfile copies it in chunks)."""

    def __init__(self, size, seed_value):
        self.left, self.random = size, random.Random(seed_value)

    def read(self, size=-1):
        size = self.left if size < 0 else min(size, self.left)
        self.left -= size
        return self.random.randbytes(size)


class _HashingFile:
    def __init__(self, handle):
        self.handle, self.hash, self.size = handle, hashlib.sha256(), 0

    def write(self, data):
        self.hash.update(data)
        self.size += len(data)
        return self.handle.write(data)

    def tell(self):
        return self.size


def _write_blob(blob_dir, writer):
    """writer(file) writes a blob into a temp file of blob_dir; it is renamed to its digest. -> descriptor dict."""
    temp = blob_dir / "partial"
    with open(temp, "wb") as handle:
        hashing = _HashingFile(handle)
        writer(hashing)
    digest = "sha256:" + hashing.hash.hexdigest()
    os.rename(temp, blob_dir / digest.split(":", 1)[1])
    return {"digest": digest, "size": hashing.size}


def build_layout(path, total_mb, layers):
    """An OCI layout at `path` with one image, ref 'bench', of `layers` uncompressed layers of random bytes."""
    blob_dir = Path(path) / "blobs" / "sha256"
    blob_dir.mkdir(parents=True)
    layer_descriptors = []
    for number in range(layers):
        size = int(total_mb * MiB / layers)

        def write_layer(handle, size=size, number=number):
            with tarfile.open(fileobj=handle, mode="w|", format=tarfile.PAX_FORMAT) as tar:
                info = tarfile.TarInfo("data/%d.bin" % number)
                info.size, info.mode, info.mtime = size, 0o644, 0
                tar.addfile(info, _RandomFile(size, 1000 + number))
        layer_descriptors.append(dict(_write_blob(blob_dir, write_layer), mediaType=images.OCI_LAYER_TAR))
    config = {"architecture": "amd64", "os": "linux", "config": {"Labels": {"bench": "%dMB" % total_mb}},
              "rootfs": {"type": "layers", "diff_ids": [d["digest"] for d in layer_descriptors]}}
    config_descriptor = dict(_write_blob(blob_dir, lambda h: h.write(json.dumps(config).encode())),
                             mediaType=images.OCI_CONFIG)
    manifest = {"schemaVersion": 2, "mediaType": images.OCI_MANIFEST, "config": config_descriptor,
                "layers": layer_descriptors}
    manifest_descriptor = dict(_write_blob(blob_dir, lambda h: h.write(json.dumps(manifest, indent=2).encode())),
                               mediaType=images.OCI_MANIFEST, annotations={images.REF_NAME_ANNOTATION: "bench"})
    (Path(path) / "oci-layout").write_text('{"imageLayoutVersion":"1.0.0"}')
    index = {"schemaVersion": 2, "mediaType": images.OCI_INDEX, "manifests": [manifest_descriptor]}
    (Path(path) / "index.json").write_text(json.dumps(index))
    return Path(path)


def cold_mirror_rss(ws, work, source, repository):
    """Peak RSS (MB) of the module process of a cold one-pass mirror of source/repository:v1 into a fresh registry."""
    cache = Path(work) / "rss-cache"
    with Registry() as target:
        variables = {"src": "%s/%s:v1" % (source.host, repository), "cache": str(cache),
                     "dst": "%s/rss/m:v1" % target.host}
        # Only this workspace's payloads: on a shared machine another bench's AnsiballZ_image_* would count too.
        with bench.PeakRSS(marker=str(ws.root / "tmp" / "remote")) as rss:
            run = ws.run_playbook(COLD_MIRROR, variables, timeout=3600)
        if run.rc != 0:
            raise SystemExit("cold mirror failed:\n%s" % run.output[-4000:])
    shutil.rmtree(str(cache), ignore_errors=True)
    return rss.mb


def measure(work_dir, rounds, big_mb, tree=None):
    """Start-up (ms, MB) of each module against ping, and the peak RSS of cold mirrors of 4 MB and big_mb MB.

    Returns {"load": uptime before and after, "direct": {name: (wall s, cpu s, rss MB)},
    "playbook": {"ping": s, "image_mirror": s}, "rss": {4: MB, big_mb: MB}, "big_mb": big_mb,
    "rounds": rounds}; table(result) renders it. tree: the collection's work tree to measure (default: this one).
    """
    work = Path(tempfile.mkdtemp(prefix="startup-", dir=str(work_dir)))
    result = {"rounds": rounds, "big_mb": big_mb, "load": [_uptime()]}
    try:
        with Registry() as source, AnsibleWorkspace(work / "ansible", collection_src=Path(tree or REPO)) as ws:
            seed.push(source.url, "startup/tiny", images.build_image([images.tar_layer({"f": b"x"})]), "v1")
            variables = {"src": "%s/startup/tiny:v1" % source.host, "dst": "%s/startup/copy:v1" % source.host,
                         "cache": str(work / "cache")}
            payloads = keep_payloads(ws, variables)
            result["direct"] = direct_startup(payloads, rounds)
            result["playbook"] = dict(zip(("ping", "image_mirror"), playbook_startup(ws, variables, rounds)))
            result["rss"] = {}
            for size_mb, layers in ((4, 1), (big_mb, 6)) if big_mb else ():  # big_mb 0: bench/run.py measures it
                layout = build_layout(work / ("layout-%d" % size_mb), size_mb, layers)
                bench.seed_layout(layout, source, "bench/s%d:v1" % size_mb)
                shutil.rmtree(str(layout))
                result["rss"][size_mb] = cold_mirror_rss(ws, work, source, "bench/s%d" % size_mb)
    finally:
        shutil.rmtree(str(work), ignore_errors=True)
    result["load"].append(_uptime())
    return result


def _uptime():
    return subprocess.run(["uptime"], capture_output=True, text=True, check=False).stdout.strip()


def table(result, rss_columns=True):
    """Markdown lines: start-up of each module on top of ping's, and the peak RSS of the cold mirrors.

    rss_columns=False leaves out the start-up RSS: wait4's maxrss of a forked child starts from its parent's
    high-water mark, which bench/run.py's settle() raises to gigabytes."""
    ping = result["direct"]["ping"]
    lines = ["| module process (AnsiballZ payload, check mode, current tiny image), median of %d | wall, ms | "
             "CPU, ms | wall over ping, ms | CPU over ping, ms |%s" % (
                 result["rounds"], " peak RSS, MB | RSS over ping, MB |" if rss_columns else ""),
             "| --- | --- | --- | --- | --- |%s" % (" --- | --- |" if rss_columns else "")]
    for name in ("ping",) + MODULES:
        wall, cpu, rss = result["direct"][name]
        over = name != "ping"
        lines.append("| %s | %.0f | %.0f | %s | %s |%s" % (
            name, wall * 1000, cpu * 1000, "%.0f" % ((wall - ping[0]) * 1000) if over else "",
            "%.0f" % ((cpu - ping[1]) * 1000) if over else "",
            " %.1f | %s |" % (rss, "%.1f" % (rss - ping[2]) if over else "") if rss_columns else ""))
    play = result["playbook"]
    lines += ["", "| ansible-playbook, one task, median of %d | wall, s |" % result["rounds"], "| --- | --- |",
              "| ansible.builtin.ping | %.2f |" % play["ping"],
              "| image_mirror, current tiny image | %.2f |" % play["image_mirror"],
              "| difference | %.2f |" % (play["image_mirror"] - play["ping"])]
    rss = dict((int(size), mb) for size, mb in (result.get("rss") or {}).items())  # keys are text once saved as JSON
    if rss:
        lines += ["", "| cold one-pass mirror (`image_push source=`), module process | peak RSS, MB |", "| --- | --- |"]
        lines += ["| %d MB image | %.1f |" % (size, rss[size]) for size in sorted(rss)]
        big = max(rss)
        lines += ["| %d MB minus 4 MB | %.1f |" % (big, rss[big] - rss[4])]
    lines += ["", "Load: %s." % "; then ".join(result["load"])]
    return lines


def compare(work_dir, rounds, old_tree):
    """Start-up of this tree against `old_tree`, payloads of both (and ping) alternating in every round.

    -> {("old" | "new", name): (wall, cpu, rss) medians}. A before/after on a machine whose load moves.
    """
    work = Path(tempfile.mkdtemp(prefix="startup-compare-", dir=str(work_dir)))
    payloads = {}
    try:
        with Registry() as source:
            seed.push(source.url, "startup/tiny", images.build_image([images.tar_layer({"f": b"x"})]), "v1")
            for side, tree in (("old", old_tree), ("new", REPO)):
                ws = AnsibleWorkspace(work / side, collection_src=Path(tree))
                variables = {"src": "%s/startup/tiny:v1" % source.host, "dst": "%s/%s/copy:v1" % (source.host, side),
                             "cache": str(work / side / "cache")}
                for name, path in keep_payloads(ws, variables).items():
                    payloads[(side, name)] = path
            keys = [("new", "ping")] + [(side, name) for name in MODULES for side in ("old", "new")]
            samples = dict((key, []) for key in keys)
            for number in range(rounds):
                turn = number % len(keys)
                for key in keys[turn:] + keys[:turn]:
                    samples[key].append(run_payload(payloads[key]))
    finally:
        shutil.rmtree(str(work), ignore_errors=True)
    return dict((key, tuple(median(s[i] for s in values) for i in range(3))) for key, values in samples.items())


def compare_table(found, rounds):
    ping = found[("new", "ping")]
    lines = ["| module process, check mode, current tiny image, median of %d | CPU over ping, ms (old / new) | "
             "peak RSS over ping, MB (old / new) |" % rounds, "| --- | --- | --- |",
             "| ansible.builtin.ping itself | %.0f ms CPU | %.1f MB |" % (ping[1] * 1000, ping[2])]
    for name in MODULES:
        old, new = found[("old", name)], found[("new", name)]
        lines.append("| %s | %.0f / %.0f | %.1f / %.1f |" % (name, (old[1] - ping[1]) * 1000, (new[1] - ping[1]) * 1000,
                                                             old[2] - ping[2], new[2] - ping[2]))
    return lines


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--size-mb", type=int, default=5000)
    parser.add_argument("--work", default=str(REPO.parent), help="where the images and registries go (disk: 3x size)")
    parser.add_argument("--tree", help="measure this work tree of the collection instead (e.g. a checkout of main)")
    parser.add_argument("--compare", metavar="OLD_TREE", help="only start-up, of this tree against OLD_TREE, alternating")
    opts = parser.parse_args()
    if opts.compare:
        print("\n".join(compare_table(compare(opts.work, opts.rounds, opts.compare), opts.rounds) + ["", "Load: " + _uptime()]))
        return
    result = measure(opts.work, opts.rounds, opts.size_mb, opts.tree)
    print("\n".join(table(result)))


if __name__ == "__main__":
    main()
