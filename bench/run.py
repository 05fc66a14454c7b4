#!/usr/bin/env python
"""`make bench`: our mirror against skopeo on the same machine, in the same run.

Two Distribution registries on loopback. A 6-layer image (1.4 GB by default, incompressible
layers) is seeded into registry A with skopeo. Then, alternating ours and skopeo so that
machine noise hits both alike, each round measures:

- cold mirror: ours = one playbook, `image_push source=` (one pass through an empty cache)
  into an empty repository of B, and, for comparison, image_pull then image_push; skopeo =
  `skopeo copy docker://A docker://B`;
- pull alone: ours = image_pull into an empty cache; skopeo = `skopeo copy docker://A oci:<dir>`;
- peak RSS of the module processes (VmHWM of every AnsiballZ_image_* process) and of skopeo.

Then: the same play around `ansible.builtin.ping` (what Ansible costs any task), the warm
re-run of the mirror (requests and blob bytes counted in both registries' access logs),
the memory of a 5 MB image against the big one, and a role run over 50 small images,
warm (per-image cost). Before each timed step, dirty pages are flushed and recently used
memory is freed, so that what ran before does not decide the result (see settle()). Medians, min/max and ratios go to stdout and
bench/RESULTS.md (or --out). `--smoke` does the same on a tiny image in a few seconds.
"""

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.support import images, seed  # noqa: E402
from tests.support.ansible import AnsibleWorkspace  # noqa: E402
from tests.support.registry import Registry  # noqa: E402

MIRROR = """
- hosts: localhost
  gather_facts: false
  tasks:
    - name: mirror in one pass
      imagepusher.registry.image_push:
        source: "{{ src }}"
        target: "{{ dst }}"
        cache_dir: "{{ cache }}"
"""

PULL_PUSH = """
- hosts: localhost
  gather_facts: false
  tasks:
    - name: pull
      imagepusher.registry.image_pull:
        name: "{{ src }}"
        cache_dir: "{{ cache }}"
      register: pulled
    - name: push
      imagepusher.registry.image_push:
        name: "{{ pulled.cache_name }}"
        target: "{{ dst }}"
        cache_dir: "{{ cache }}"
"""

PULL = """
- hosts: localhost
  gather_facts: false
  tasks:
    - name: pull
      imagepusher.registry.image_pull:
        name: "{{ src }}"
        cache_dir: "{{ cache }}"
"""

# What ansible-playbook costs any task, before and after the module's own work.
PING = """
- hosts: localhost
  gather_facts: false
  tasks:
    - name: the cost of a task that does nothing
      ansible.builtin.ping:
"""

ROLE = """
- hosts: localhost
  gather_facts: false
  roles:
    - role: imagepusher.registry.mirror_images
      vars:
        mirror_images_cache_dir: "{{ cache }}"
        mirror_images_list: "{{ entries }}"
"""


class PeakRSS:
    """Largest VmHWM of the processes whose command line contains `marker` (or of one pid).

    Known pids are read every `interval`. The process list is rescanned, every `rescan`
    seconds, only while none of them lives (before a task's module starts, between tasks):
    scanning all of /proc costs CPU that the run being measured would otherwise have. VmHWM
    is a high-water mark, so reading it late loses nothing while the process lives.
    """

    def __init__(self, marker=None, pid=None, interval=0.05, rescan=0.25):
        self.marker, self.pid, self.interval, self.rescan = marker, pid, interval, rescan
        self.peak_kb = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _pids(self):
        if self.pid:
            return [self.pid]
        found = []
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                try:
                    with open("/proc/%s/cmdline" % entry, "rb") as handle:
                        if self.marker.encode() in handle.read():
                            found.append(int(entry))
                except OSError:
                    pass
        return found

    def _run(self):
        pids, scanned, alive = [], 0.0, False
        while not self._stop.is_set():
            if not alive and time.monotonic() - scanned >= self.rescan:
                pids, scanned = self._pids(), time.monotonic()
            alive = False
            for pid in pids:
                try:
                    with open("/proc/%d/status" % pid) as handle:
                        for line in handle:
                            if line.startswith("VmHWM:"):
                                self.peak_kb = max(self.peak_kb, int(line.split()[1]))
                    alive = True
                except OSError:
                    pass
            time.sleep(self.interval)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()

    @property
    def mb(self):
        return self.peak_kb / 1024.0


# Memory touched and freed before each timed step; main() sizes it from the image.
WARM = {"mb": 0}


def settle():
    """Start every timed step from the same state.

    Dirty pages are flushed: the previous step's writes (gigabytes into the registries and
    caches) would otherwise be written back during, and charged to, the next step. Then
    WARM["mb"] of memory is touched and freed. On a VM that hands free memory back to the host
    (free page reporting), a page the guest has not touched lately costs a fault on the host
    when it is used again: about 3 s per GB here. A registry ingesting an image writes it
    into fresh page-cache pages, so a step ran up to 30% faster when the step before it had
    just freed page cache (skopeo writing an OCI layout, a registry torn down) than after one
    that had not (our pull, which writes around the page cache): what ran before decided
    the result. With recently used memory freed right before every step, none does.
    """
    os.sync()
    if WARM["mb"]:
        memory = bytearray(WARM["mb"] << 20)
        memory[::4096] = b"\x01" * len(range(0, len(memory), 4096))  # one write per page
        del memory


def timed_skopeo(args):
    settle()
    start = time.monotonic()
    proc = subprocess.Popen(["skopeo", "copy", "--quiet"] + args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    with PeakRSS(pid=proc.pid) as rss:
        _out, err = proc.communicate()
    elapsed = time.monotonic() - start
    if proc.returncode != 0:
        raise SystemExit("skopeo failed: %s" % err.decode()[-2000:])
    return elapsed, rss.mb


def timed_playbook(ws, playbook, extra):
    settle()
    start = time.monotonic()
    with PeakRSS(marker="AnsiballZ_image_") as rss:
        run = ws.run_playbook(playbook, extra, timeout=1800)
    elapsed = time.monotonic() - start
    if run.rc != 0:
        raise SystemExit("playbook failed:\n%s" % run.output[-4000:])
    return elapsed, rss.mb, run


def build_image(total_mb, layers, workdir):
    """A 6-layer image seeded with skopeo (an independent client) into registry A."""
    per_layer = total_mb / float(layers)
    image = images.build_image([images.random_layer(per_layer, seed=1000 + i, name="data/%d.bin" % i)
                                for i in range(layers)], labels={"bench": "%dMB" % total_mb})
    layout = images.write_oci_layout(Path(workdir) / ("layout-%d" % total_mb), {"bench": image})
    return image, layout


def seed_layout(layout, registry, repo):
    subprocess.run(["skopeo", "copy", "--quiet", "--dest-tls-verify=false", "oci:%s:bench" % layout,
                    "docker://%s/%s" % (registry.host, repo)], check=True)


def summary(values):
    return statistics.median(values), min(values), max(values)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mb", type=int, default=1400)
    parser.add_argument("--layers", type=int, default=6)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--images", type=int, default=50, help="small images for the scale run")
    parser.add_argument("--smoke", action="store_true", help="tiny image, one round: checks the harness")
    parser.add_argument("--out", default=str(REPO / "bench" / "RESULTS.md"))
    opts = parser.parse_args()
    if opts.smoke:
        opts.size_mb, opts.rounds, opts.images = 6, 1, 3
    WARM["mb"] = opts.size_mb * 3 // 2  # what a registry ingesting the image takes, and some

    work = tempfile.mkdtemp(prefix="imagepusher-bench-")
    rows = {}
    try:
        with Registry() as reg_a, Registry() as reg_b, AnsibleWorkspace(Path(work) / "ansible") as ws:
            print("building a %d MB, %d-layer image ..." % (opts.size_mb, opts.layers), flush=True)
            big, layout = build_image(opts.size_mb, opts.layers, work)
            seed_layout(layout, reg_a, "bench/big:v1")
            small, small_layout = build_image(5, 1, work)
            seed_layout(small_layout, reg_a, "bench/small:v1")
            shutil.rmtree(layout)
            src = "%s/bench/big:v1" % reg_a.host

            for key in ("ours_mirror", "ours_pull_push", "skopeo_mirror", "ours_pull", "skopeo_pull", "ours_rss",
                        "ours_pull_rss", "skopeo_rss"):
                rows[key] = []
            for n in range(opts.rounds):
                cache = Path(work) / ("cache-%d" % n)

                # Every push goes to a registry of its own: a target that already holds the blobs
                # (or that skopeo's blob-info cache knows a mount source in) would measure nothing.
                def ours_mirror(cache=cache):
                    with Registry() as fresh:
                        t, rss, _run = timed_playbook(ws, MIRROR, {"src": src, "cache": str(cache),
                                                                   "dst": "%s/ours/m:v1" % fresh.host})
                    rows["ours_mirror"].append(t)
                    rows["ours_rss"].append(rss)

                def ours_pull_push(cache=cache):
                    with Registry() as fresh:
                        t, rss, _run = timed_playbook(ws, PULL_PUSH, {"src": src, "cache": str(cache) + "-pp",
                                                                      "dst": "%s/ours/pp:v1" % fresh.host})
                    rows["ours_pull_push"].append(t)
                    rows["ours_rss"].append(rss)
                    shutil.rmtree(str(cache) + "-pp")

                def skopeo_mirror():
                    with Registry() as fresh:
                        t, rss = timed_skopeo(["--src-tls-verify=false", "--dest-tls-verify=false", "docker://" + src,
                                               "docker://%s/skopeo/m:v1" % fresh.host])
                    rows["skopeo_mirror"].append(t)
                    rows["skopeo_rss"].append(rss)

                def ours_pull(n=n):
                    pull_cache = Path(work) / ("pull-%d" % n)
                    t, rss, _run = timed_playbook(ws, PULL, {"src": src, "cache": str(pull_cache)})
                    rows["ours_pull"].append(t)
                    rows["ours_rss"].append(rss)
                    rows["ours_pull_rss"].append(rss)
                    shutil.rmtree(pull_cache)

                def skopeo_pull(n=n):
                    oci_dir = Path(work) / ("skopeo-oci-%d" % n)
                    t, _rss = timed_skopeo(["--src-tls-verify=false", "docker://" + src, "oci:%s:x" % oci_dir])
                    rows["skopeo_pull"].append(t)
                    shutil.rmtree(oci_dir)

                # Who goes first alternates from round to round, so that what the previous step left
                # behind (memory just freed, writeback) favours neither side.
                steps = [ours_mirror, ours_pull_push, skopeo_mirror, ours_pull, skopeo_pull]
                if n % 2:
                    steps = [skopeo_mirror, ours_mirror, ours_pull_push, skopeo_pull, ours_pull]
                for step in steps:
                    step()
                print("round %d: mirror ours %.2fs (pull+push %.2fs) skopeo %.2fs | pull ours %.2fs skopeo %.2fs"
                      % (n + 1, rows["ours_mirror"][-1], rows["ours_pull_push"][-1], rows["skopeo_mirror"][-1],
                         rows["ours_pull"][-1], rows["skopeo_pull"][-1]), flush=True)

            # Ansible alone: the same play around a module that does nothing.
            rows["ansible_floor"] = [timed_playbook(ws, PING, {})[0] for _n in range(opts.rounds)]

            # Warm re-run of the last mirror, into a target that is current.
            with Registry() as fresh:
                dst = "%s/ours/warm:v1" % fresh.host
                timed_playbook(ws, MIRROR, {"src": src, "cache": str(Path(work) / "cache-0"), "dst": dst})
                mark_a, mark_b = reg_a.mark(), fresh.mark()
                t_warm, _rss, _run = timed_playbook(ws, MIRROR, {"src": src, "cache": str(Path(work) / "cache-0"),
                                                                 "dst": dst})
                warm_a, warm_b = reg_a.access_log(since=mark_a), fresh.access_log(since=mark_b)
            warm_requests = ["%s %s" % (e.method, e.path) for e in warm_a + warm_b]
            warm_blob_bytes = sum(e.size or 0 for e in warm_a + warm_b if "/blobs/" in e.path)

            # Memory: the same pull of a 5 MB image.
            small_vars = {"src": "%s/bench/small:v1" % reg_a.host, "cache": str(Path(work) / "small-cache")}
            _t, small_rss, _run = timed_playbook(ws, PULL, small_vars)

            # Scale: N small images through the role, warm (second run).
            for i in range(opts.images):
                seed.push(reg_a.url, "scale/img%d" % i, images.build_image(
                    [images.tar_layer({"f%d" % i: b"x" * (i + 1)})]), "v1")
            entries = [{"source": "%s/scale/img%d:v1" % (reg_a.host, i),
                        "target": "%s/scale/img%d:v1" % (reg_b.host, i)} for i in range(opts.images)]
            role_vars = {"entries": entries, "cache": str(Path(work) / "scale-cache")}
            t_role_cold, _rss, _run = timed_playbook(ws, ROLE, role_vars)
            mark_a, mark_b = reg_a.mark(), reg_b.mark()
            t_role_warm, _rss, _run = timed_playbook(ws, ROLE, role_vars)
            role_requests = len(reg_a.access_log(since=mark_a)) + len(reg_b.access_log(since=mark_b))
            t_empty, _rss, _run = timed_playbook(ws, ROLE, {"entries": [], "cache": role_vars["cache"]})
    finally:
        shutil.rmtree(work, ignore_errors=True)

    om, sm = summary(rows["ours_mirror"]), summary(rows["skopeo_mirror"])
    opp = summary(rows["ours_pull_push"])
    op, sp = summary(rows["ours_pull"]), summary(rows["skopeo_pull"])
    floor = summary(rows["ansible_floor"])
    big_rss = max(rows["ours_rss"])
    big_pull_rss = max(rows["ours_pull_rss"])
    lines = [
        "# Benchmark: imagepusher.registry against skopeo",
        "",
        "Same machine, same run, alternating (`make bench`; %s). Image: %d MB in %d incompressible layers,"
        " two loopback Distribution 2.8 registries. Times are wall clock in seconds, ours through"
        " `ansible-playbook` (Ansible start-up included); median (min-max) of %d rounds."
        % (time.strftime("%Y-%m-%d"), opts.size_mb, opts.layers, opts.rounds),
        "",
        "| measure | ours | skopeo | ratio ours/skopeo | target |",
        "| --- | --- | --- | --- | --- |",
        "| cold mirror, one pass (`image_push source=`, empty cache) | %.2f (%.2f-%.2f) | %.2f (%.2f-%.2f) | %.2f | <= 1.0 |"
        % (om + sm + (om[0] / sm[0],)),
        "| cold mirror, two tasks (`image_pull` then `image_push`) | %.2f (%.2f-%.2f) | %.2f (%.2f-%.2f) | %.2f | |"
        % (opp + sm + (opp[0] / sm[0],)),
        "| pull alone | %.2f (%.2f-%.2f) | %.2f (%.2f-%.2f) | %.2f | <= 0.8 |" % (op + sp + (op[0] / sp[0],)),
        "| peak RSS (any of the runs above), MB | %.1f | %.1f | | <= 64 |" % (big_rss, max(rows["skopeo_rss"])),
        "| peak RSS of a pull, %d MB image minus 5 MB image, MB | %.1f | | | <= 8 |"
        % (opts.size_mb, big_pull_rss - small_rss),
        "",
        "Ansible alone, the same play running `ansible.builtin.ping`: %.2f (%.2f-%.2f) s. Taken off our"
        " times, that leaves the module's own work (its start-up included): the mirror %.2f s (%.2f of"
        " skopeo), the pull %.2f s (%.2f of skopeo)."
        % (floor + (om[0] - floor[0], (om[0] - floor[0]) / sm[0], op[0] - floor[0], (op[0] - floor[0]) / sp[0])),
        "",
        "Warm re-run of the mirror (target current): %.2f s; requests reaching the registries: %s;"
        " blob bytes: %d." % (t_warm, ", ".join(warm_requests) or "none", warm_blob_bytes),
        "",
        "Scale: the mirror_images role over %d small images, warm: %.2f s, %d requests in all; an empty"
        " role run costs %.2f s, so %.3f s per image (cold: %.2f s)."
        % (opts.images, t_role_warm, role_requests, t_empty, (t_role_warm - t_empty) / opts.images, t_role_cold),
        "",
    ]
    text = "\n".join(lines)
    print("\n" + text)
    if not opts.smoke:
        Path(opts.out).write_text(text)
        print("written to %s" % opts.out)


if __name__ == "__main__":
    main()
