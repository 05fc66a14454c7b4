#!/usr/bin/env python
"""`make bench`: our mirror against skopeo on the same machine, in the same run.

Two Distribution registries on loopback. A 6-layer image (1.4 GB by default, incompressible
layers) is seeded into registry A with skopeo. Then, alternating ours and skopeo so that
machine noise hits both alike (who goes first swaps from round to round), each round measures:

- through ansible-playbook, one cold one-pass mirror: ours = one `image_mirror` task (images:
  [{source, target}], empty cache); skopeo = `skopeo copy docker://A docker://B` in an
  `ansible.builtin.command` task of the same kind of play (Ansible costs both sides alike);
- the `image_mirror` module process run directly (python -m, args file), with its cache and, when
  the module has the option, with `cache: false`, against the skopeo CLI: wall time, CPU seconds,
  requests reaching the registries, and the disk the `cache: false` run used;
- the rows measured before: `image_push source=` (one pass) and image_pull then image_push through
  a playbook against the skopeo CLI; pull alone against `skopeo copy docker://A oci:<dir>`;
- peak RSS of the module processes (VmHWM) and of skopeo.

Then, once per run: the same play around `ansible.builtin.ping` (what Ansible costs any task), the
warm re-run of the mirror (requests and blob bytes counted in both registries' access logs), the
memory of a 5 MB pull against the big one, a role run over 50 small images, warm (per-image cost),
the peak RSS of the module process mirroring a --big-mb (5 GB) image and a 4 MB one (the big image
built, seeded and mirrored once, then deleted), and bench/startup.py's rows when that file exists.
Before each timed step, dirty pages are flushed and recently used memory is freed, so that what ran
before does not decide the result (see probes.settle()).

Medians, min/max and ratios go to stdout, to run.py's own block of bench/RESULTS.md (or --out;
every other line of the file is kept), to bench/results.json, and as a chart to bench/results.svg
(bench/chart.py, in the .venv-bench venv). `--smoke` does the same on tiny sizes in well under a
minute and writes its JSON and chart to a temporary directory, never over the recorded results.
"""

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
BENCH = REPO / "bench"
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(BENCH))

from big_image import write_big_layout  # noqa: E402
from module_run import run_module, run_process  # noqa: E402
from probes import WARM, PeakRSS, settle  # noqa: E402,F401  (fleet.py and ab_trees.py use them through here)
from results_file import draw_chart, replace_section, save_numbers  # noqa: E402
from run_report import BEGIN, END, render, table_rows  # noqa: E402
from tests.support import images, seed  # noqa: E402
from tests.support.ansible import AnsibleWorkspace, make_collections_dir  # noqa: E402
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

# Issue 16's first row: the same kind of play on both sides, one task each.
MIRROR_LIST = """
- hosts: localhost
  gather_facts: false
  tasks:
    - name: mirror with image_mirror
      imagepusher.registry.image_mirror:
        images:
          - source: "{{ src }}"
            target: "{{ dst }}"
        cache_dir: "{{ cache }}"
"""

SKOPEO_TASK = """
- hosts: localhost
  gather_facts: false
  tasks:
    - name: mirror with skopeo
      ansible.builtin.command:
        argv: [skopeo, copy, --quiet, --src-tls-verify=false, --dest-tls-verify=false, "docker://{{ src }}", "docker://{{ dst }}"]
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

PULL_PUSH = PULL + """\
      register: pulled
    - name: push
      imagepusher.registry.image_push:
        name: "{{ pulled.cache_name }}"
        target: "{{ dst }}"
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


def timed_skopeo(args, more=None):
    """skopeo copy ARGS from the same memory state: (wall, peak MB); its CPU seconds and syscalls appended to `more`."""
    run = run_process(["skopeo", "copy", "--quiet"] + args)
    if run.returncode != 0:
        raise SystemExit("skopeo failed: %s" % run.output[-2000:])
    if more is not None:
        more += [run.cpu, run.syscalls]
    return run.wall, run.peak_mb


def timed_playbook(ws, playbook, extra):
    settle()
    start = time.monotonic()
    with PeakRSS(marker="AnsiballZ_image_") as rss:
        # Progress as a user gets it by default (the test workspace turns it off): our tasks then run as async
        # jobs, polled once a second, and that costs what it costs.
        run = ws.run_playbook(playbook, extra, timeout=1800, env={"IMAGEPUSHER_PROGRESS": "true"})
    elapsed = time.monotonic() - start
    if run.rc != 0:
        raise SystemExit("playbook failed:\n%s" % run.output[-4000:])
    return elapsed, rss.mb, run


def build_image(total_mb, layers, workdir):
    """An OCI layout holding one `layers`-layer image of `total_mb` MB, written a chunk at a time; returns
    (None, layout) (callers used to get the image object too)."""
    return None, write_big_layout(Path(workdir) / ("layout-%d" % total_mb), total_mb, layers)


def seed_layout(layout, registry, repo):
    subprocess.run(["skopeo", "copy", "--quiet", "--dest-tls-verify=false", "oci:%s:bench" % layout,
                    "docker://%s/%s" % (registry.host, repo)], check=True)


def summary(values):
    return statistics.median(values), min(values), max(values)


def load_average():
    with open("/proc/loadavg") as handle:
        return " ".join(handle.read().split()[:3])


def disk_bytes(path):
    """Bytes the files under `path` take on disk (allocated blocks, as du counts them); links not followed."""
    total = 0
    for folder, _dirs, files in os.walk(path):
        for name in files:
            total += os.lstat(os.path.join(folder, name)).st_blocks * 512
    return total


SERIES = ("ours_list_play", "skopeo_task_play", "ours_module", "ours_module_cpu", "ours_module_requests",
          "ours_module_syscalls", "ours_nocache", "ours_nocache_cpu", "ours_nocache_requests", "ours_nocache_syscalls",
          "ours_nocache_disk", "ours_push_source", "ours_pull_push", "skopeo_mirror", "skopeo_mirror_cpu",
          "skopeo_mirror_syscalls", "skopeo_mirror_requests", "ours_pull", "skopeo_pull",
          "ours_rss", "ours_pull_rss", "skopeo_rss", "ansible_floor")


class Bench:
    """One run's registries, workspace and measurements; `series` holds every per-round list."""

    def __init__(self, opts, work, reg_a, ws):
        self.opts, self.work, self.reg_a, self.ws = opts, Path(work), reg_a, ws
        self.src = "%s/bench/big:v1" % reg_a.host
        self.root = make_collections_dir(self.work / "collections", REPO)
        self.series = dict((key, []) for key in SERIES)
        self.cache_option = True

    def add(self, key, value):
        self.series[key].append(value)

    def add_all(self, pairs):
        for key, value in pairs:
            self.add(key, value)

    def ours_play(self, key, play, cache, target):
        """One timed ansible-playbook run of `play` from the source to `target` in a registry of its own;
        its time goes to `key`, its peak RSS to ours_rss."""
        with Registry() as fresh:
            t, rss, _run = timed_playbook(self.ws, play, {"src": self.src, "cache": str(cache),
                                                          "dst": "%s/%s" % (fresh.host, target)})
        self.add_all(((key, t), ("ours_rss", rss)))

    def module_mirror(self, source, work, **args):
        """The image_mirror module process, one image; returns its ModuleRun and the requests both registries saw."""
        with Registry() as fresh:
            marks = self.reg_a.mark(), fresh.mark()
            entry = {"source": source, "target": "%s/ours/module:v1" % fresh.host}
            run = run_module(self.root, dict(args, images=[entry]), work, module="image_mirror")
            requests = len(self.reg_a.access_log(since=marks[0])) + len(fresh.access_log(since=marks[1]))
        return run, requests

    def probe_cache_option(self):
        """Whether image_mirror takes `cache: false` (another change adds it): asked once, in check mode."""
        args = {"images": [{"source": self.src, "target": "%s/probe/x:v1" % self.reg_a.host}], "cache": False,
                "_ansible_check_mode": True}
        result = run_module(self.root, args, self.work, module="image_mirror", check=False).result
        msg = str(result.get("msg", ""))
        if result.get("failed") and "cache" in msg and "nsupported" in msg:
            self.cache_option = False
        elif result.get("failed"):
            raise SystemExit("image_mirror cache=false (check mode) failed: %s" % msg)
        print("image_mirror cache: false %s" % ("available" if self.cache_option else "not available (rejected)"),
              flush=True)

    # -- the steps of a round. Every push goes to a registry of its own: a target that already holds the
    # blobs (or that skopeo's blob-info cache knows a mount source in) would measure nothing.
    def ours_list_play(self, n):
        cache = self.work / ("list-cache-%d" % n)
        self.ours_play("ours_list_play", MIRROR_LIST, cache, "ours/list:v1")
        shutil.rmtree(cache)

    def skopeo_task_play(self, _n):
        with Registry() as fresh:
            t, _rss, _run = timed_playbook(self.ws, SKOPEO_TASK, {"src": self.src, "dst": "%s/skopeo/task:v1" % fresh.host})
        self.add("skopeo_task_play", t)

    def ours_module(self, n):
        cache = self.work / ("module-cache-%d" % n)
        run, requests = self.module_mirror(self.src, self.work, cache_dir=str(cache))
        self.add_all((("ours_module", run.wall), ("ours_module_cpu", run.cpu), ("ours_module_requests", requests),
                      ("ours_module_syscalls", run.syscalls), ("ours_rss", run.peak_mb)))
        shutil.rmtree(cache)

    def ours_nocache(self, n):
        if not self.cache_option:
            return
        work = self.work / ("nocache-%d" % n)
        work.mkdir()
        run, requests = self.module_mirror(self.src, work, cache=False)
        self.add_all((("ours_nocache", run.wall), ("ours_nocache_cpu", run.cpu), ("ours_nocache_requests", requests),
                      ("ours_nocache_syscalls", run.syscalls), ("ours_nocache_disk", disk_bytes(work / "module-home")),
                      ("ours_rss", run.peak_mb)))
        shutil.rmtree(work)

    def ours_push_source(self, n):
        cache = self.work / ("cache-%d" % n)
        self.ours_play("ours_push_source", MIRROR, cache, "ours/m:v1")
        if n:  # the warm re-run reuses round 0's cache
            shutil.rmtree(cache)

    def ours_pull_push(self, n):
        cache = self.work / ("cache-pp-%d" % n)
        self.ours_play("ours_pull_push", PULL_PUSH, cache, "ours/pp:v1")
        shutil.rmtree(cache)

    def skopeo_mirror(self, _n):
        with Registry() as fresh:
            marks, more = (self.reg_a.mark(), fresh.mark()), []
            t, rss = timed_skopeo(["--src-tls-verify=false", "--dest-tls-verify=false", "docker://" + self.src,
                                   "docker://%s/skopeo/m:v1" % fresh.host], more)
            requests = len(self.reg_a.access_log(since=marks[0])) + len(fresh.access_log(since=marks[1]))
        self.add_all((("skopeo_mirror", t), ("skopeo_mirror_cpu", more[0]), ("skopeo_mirror_syscalls", more[1]),
                      ("skopeo_mirror_requests", requests), ("skopeo_rss", rss)))

    def ours_pull(self, n):
        cache = self.work / ("pull-%d" % n)
        t, rss, _run = timed_playbook(self.ws, PULL, {"src": self.src, "cache": str(cache)})
        self.add_all((("ours_pull", t), ("ours_rss", rss), ("ours_pull_rss", rss)))
        shutil.rmtree(cache)

    def skopeo_pull(self, n):
        oci_dir = self.work / ("skopeo-oci-%d" % n)
        t, _rss = timed_skopeo(["--src-tls-verify=false", "docker://" + self.src, "oci:%s:x" % oci_dir])
        self.add("skopeo_pull", t)
        shutil.rmtree(oci_dir)

    def one_round(self, n):
        """Each group's two sides back to back; who goes first swaps from round to round, so that what the step
        before left behind (memory just freed, writeback) favours neither side."""
        groups = (([self.ours_push_source, self.ours_pull_push, self.ours_module, self.ours_nocache], [self.skopeo_mirror]),
                  ([self.ours_pull], [self.skopeo_pull]),
                  ([self.ours_list_play], [self.skopeo_task_play]))
        for ours, skopeo in groups:
            for step in (ours + skopeo if n % 2 == 0 else skopeo + ours):
                step(n)
        last = dict((key, values[-1] if values else float("nan")) for key, values in self.series.items())
        print("round %d: playbook mirror ours %.2fs skopeo %.2fs | module %.2fs (cache: false %.2fs) skopeo CLI %.2fs"
              " | push source= %.2fs, pull+push %.2fs | pull ours %.2fs skopeo %.2fs"
              % (n + 1, last["ours_list_play"], last["skopeo_task_play"], last["ours_module"], last["ours_nocache"],
                 last["skopeo_mirror"], last["ours_push_source"], last["ours_pull_push"], last["ours_pull"],
                 last["skopeo_pull"]), flush=True)

    # -- measured once per run
    def once(self, reg_b):
        """Ansible alone, the warm re-run, the small pull's memory and the role over many small images."""
        opts, work, reg_a, ws = self.opts, self.work, self.reg_a, self.ws
        self.series["ansible_floor"] = [timed_playbook(ws, PING, {})[0] for _n in range(opts.rounds)]
        found = {}
        # Warm re-run of round 0's mirror, into a target that is current.
        with Registry() as fresh:
            warm_vars = {"src": self.src, "cache": str(work / "cache-0"), "dst": "%s/ours/warm:v1" % fresh.host}
            timed_playbook(ws, MIRROR, warm_vars)
            mark_a, mark_b = reg_a.mark(), fresh.mark()
            found["warm_s"] = timed_playbook(ws, MIRROR, warm_vars)[0]
            warm_a, warm_b = reg_a.access_log(since=mark_a), fresh.access_log(since=mark_b)
        found["warm_requests"] = ["%s %s" % (e.method, e.path) for e in warm_a + warm_b]
        found["warm_blob_bytes"] = sum(e.size or 0 for e in warm_a + warm_b if "/blobs/" in e.path)
        shutil.rmtree(work / "cache-0")

        # Memory: the same pull of a 5 MB image.
        small_vars = {"src": "%s/bench/small:v1" % reg_a.host, "cache": str(work / "small-cache")}
        found["small_pull_rss"] = timed_playbook(ws, PULL, small_vars)[1]

        # Scale: N small images through the role, warm (second run).
        for i in range(opts.images):
            seed.push(reg_a.url, "scale/img%d" % i, images.build_image(
                [images.tar_layer({"f%d" % i: b"x" * (i + 1)})]), "v1")
        entries = [{"source": "%s/scale/img%d:v1" % (reg_a.host, i),
                    "target": "%s/scale/img%d:v1" % (reg_b.host, i)} for i in range(opts.images)]
        role_vars = {"entries": entries, "cache": str(work / "scale-cache")}
        found["role_cold_s"] = timed_playbook(ws, ROLE, role_vars)[0]
        mark_a, mark_b = reg_a.mark(), reg_b.mark()
        found["role_warm_s"] = timed_playbook(ws, ROLE, role_vars)[0]
        found["role_requests"] = len(reg_a.access_log(since=mark_a)) + len(reg_b.access_log(since=mark_b))
        found["role_empty_s"] = timed_playbook(ws, ROLE, {"entries": [], "cache": role_vars["cache"]})[0]
        return found

    def big_memory(self):
        """Peak RSS of the image_mirror module process, one cold one-pass mirror each of a --big-mb image and
        of a 4 MB one. The big image is built, seeded and mirrored once per run (not per round), then deleted."""
        opts, found = self.opts, {}
        print("building a %d MB, %d-layer image for the memory row ..." % (opts.big_mb, opts.layers), flush=True)
        layout = write_big_layout(self.work / "huge-layout", opts.big_mb, opts.layers)
        seed_layout(layout, self.reg_a, "bench/huge:v1")
        shutil.rmtree(layout)
        tiny = write_big_layout(self.work / "tiny-layout", 4, 1)
        seed_layout(tiny, self.reg_a, "bench/tiny:v1")
        shutil.rmtree(tiny)
        for key, name in (("big", "bench/huge:v1"), ("tiny", "bench/tiny:v1")):
            cache = self.work / ("memory-cache-" + key)
            run, _requests = self.module_mirror("%s/%s" % (self.reg_a.host, name), self.work, cache_dir=str(cache))
            found["%s_mirror_rss" % key], found["%s_mirror_s" % key] = run.peak_mb, run.wall
            shutil.rmtree(cache)
        # The source registry keeps the big image until the run ends; its blobs go with it.
        return found


def startup_rows(work, rounds):
    """bench/startup.py's measure() when that file exists (another change writes it): {rows, note, covers_big_rss}.

    lines: its table (startup.table). covers_big_rss stays False: the big image's memory is run.py's to measure."""
    if not (BENCH / "startup.py").exists():
        return {"rows": None, "note": "bench/startup.py is not there yet: no start-up rows", "covers_big_rss": False}
    # Imported here: only when the file exists.
    import startup  # pylint: disable=import-outside-toplevel
    path = Path(work) / "startup"
    path.mkdir()
    print("start-up rows (bench/startup.py) ...", flush=True)
    # big_mb 0: the memory of the big image is measured once, by run.py (its memory rows), not here again.
    rows = startup.measure(str(path), rounds, 0)
    # Without its RSS columns: in this process, a forked child's maxrss starts from settle()'s gigabytes.
    return {"rows": rows, "lines": startup.table(rows, rss_columns=False), "note": None, "covers_big_rss": False}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mb", type=int, default=1400)
    parser.add_argument("--layers", type=int, default=6)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--images", type=int, default=50, help="small images for the scale run")
    parser.add_argument("--big-mb", type=int, default=5000, help="size of the image of the memory row (built once per run)")
    parser.add_argument("--smoke", action="store_true", help="tiny images, one round: checks the harness")
    parser.add_argument("--out", default=str(BENCH / "RESULTS.md"))
    parser.add_argument("--results-dir", help="where results.json and results.svg go (default: beside --out; a smoke"
                        " run: a new temporary directory)")
    opts = parser.parse_args()
    if opts.smoke:
        opts.size_mb, opts.rounds, opts.images, opts.big_mb = 6, 1, 3, 8
    WARM["mb"] = opts.size_mb * 3 // 2  # what a registry ingesting the image takes, and some
    started, load_start = time.monotonic(), load_average()

    # Under the checkout's parent (/work here), whose filesystem has room for the big image; a smoke run in /tmp.
    work = tempfile.mkdtemp(prefix="imagepusher-bench-", dir=None if opts.smoke else str(REPO.parent))
    try:
        with Registry() as reg_a, Registry() as reg_b, AnsibleWorkspace(Path(work) / "ansible") as ws:
            print("building a %d MB, %d-layer image ..." % (opts.size_mb, opts.layers), flush=True)
            layout = build_image(opts.size_mb, opts.layers, work)[1]
            seed_layout(layout, reg_a, "bench/big:v1")
            shutil.rmtree(layout)
            small_layout = build_image(5, 1, work)[1]
            seed_layout(small_layout, reg_a, "bench/small:v1")
            bench = Bench(opts, work, reg_a, ws)
            bench.probe_cache_option()
            for n in range(opts.rounds):
                bench.one_round(n)
            found = bench.once(reg_b)
            # A smoke run (make test runs one) leaves out start-up: 30 s of its time, and that harness is
            # bench/startup.py's own (its table is unit-tested, its measurement is make bench's).
            start = startup_rows(work, opts.rounds) if not opts.smoke else {
                "rows": None, "note": "start-up rows: measured by make bench, not in a smoke run", "covers_big_rss": False}
            if not start["covers_big_rss"]:
                found.update(bench.big_memory())
    finally:
        shutil.rmtree(work, ignore_errors=True)

    numbers = {"date": time.strftime("%Y-%m-%d"), "size_mb": opts.size_mb, "layers": opts.layers,
               "rounds": opts.rounds, "images": opts.images, "big_mb": opts.big_mb, "smoke": opts.smoke,
               "load_start": load_start, "load_end": load_average(), "took_s": time.monotonic() - started,
               "cache_option": bench.cache_option, "series": bench.series, "once": found, "startup": start}
    numbers["time_rows"], numbers["memory_rows"] = table_rows(numbers)  # what bench/chart.py draws
    text = render(numbers)
    print("\n" + text)
    out = Path(opts.out)
    folder = Path(opts.results_dir or (tempfile.mkdtemp(prefix="imagepusher-bench-smoke-") if opts.smoke else out.parent))
    json_path, svg_path = folder / "results.json", folder / "results.svg"
    save_numbers(json_path, "run", numbers)
    if not opts.smoke:  # a smoke run never overwrites the recorded results
        replace_section(out, BEGIN, END, text, at_top=True)
        print("written to %s (its own block) and %s" % (out, json_path))
    print(draw_chart(json_path, svg_path))
    print("the run took %.1f min; load average %s at the start, %s at the end"
          % (numbers["took_s"] / 60, load_start, numbers["load_end"]))


if __name__ == "__main__":
    main()
