"""What the disk and the CPUs do, half a second at a time, while one big image is copied.

    .venv/bin/python bench/disk_timeline.py [MB] [STEP ...]

A STEP is `skopeo` (`skopeo copy docker://A docker://B`), `cached` (image_mirror as a module
process with a fresh cache_dir, the one-pass mirror), `relay` (the same with `cache: false`), or
either of the last two followed by `+` and JSON module arguments to add, e.g.
`relay+{"concurrency": 2}`. Default: skopeo cached relay. Registry A holds an image of 6
incompressible layers (1.4 GB by default); each step copies it to a fresh registry B, from the
same memory state (run.py's settle()).

Per step: wall time, the seconds the disk was busy (`/proc/diskstats` io_ticks), the CPU seconds of
the whole machine (`/proc/stat`, both vCPUs) and the bytes written; with --timeline, one line per
half second: MB/s written, disk busy %, machine CPU busy % (100 = both vCPUs) and iowait %.

Why: it shows where a copy waits. On this machine the target registry writes what it receives to
the page cache and fsyncs each blob when its upload completes (the PUT): the disk is then busy
for most of a second per 233 MB layer, and the CPUs go idle: every stream waits while it lasts.
"""

import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

import run as bench  # noqa: E402
from probes import machine_cpu  # noqa: E402
from tests.support.ansible import make_collections_dir  # noqa: E402
from tests.support.registry import Registry  # noqa: E402

MODULE = "ansible_collections.imagepusher.registry.plugins.modules.image_mirror"
TICK = 0.5


def root_disk():
    """The block device the work directory lives on (its whole disk, as /proc/diskstats names it), or None
    (an overlay or network file system: the disk columns then stay at 0)."""
    device = os.stat(str(REPO)).st_dev
    path = "/sys/dev/block/%d:%d" % (os.major(device), os.minor(device))
    if not os.path.exists(path):
        return None
    name = os.path.basename(os.path.realpath(path))
    return name if os.path.exists("/sys/block/%s" % name) else name.rstrip("0123456789").rstrip("p")


def counters(disk):
    """(sectors written, disk busy ms, machine busy CPU-s, iowait CPU-s)."""
    written = busy = 0
    with open("/proc/diskstats") as handle:
        for line in handle:
            fields = line.split()
            if fields[2] == disk:
                written, busy = int(fields[9]), int(fields[12])
    return (written, busy) + machine_cpu()


class Sampler(threading.Thread):
    def __init__(self, disk):
        threading.Thread.__init__(self, daemon=True)
        self.disk = disk
        self.rows = []
        self.stop = threading.Event()

    def run(self):
        last, start = counters(self.disk), time.monotonic()
        while not self.stop.wait(TICK):
            now = counters(self.disk)
            cpus = os.cpu_count() or 1
            self.rows.append((time.monotonic() - start, (now[0] - last[0]) * 512 / 1e6 / TICK,
                              (now[1] - last[1]) / 10.0 / TICK, (now[2] - last[2]) * 100.0 / TICK / cpus,
                              (now[3] - last[3]) * 100.0 / TICK / cpus))
            last = now


def copy(step, collections, work, source, target):
    if step == "skopeo":
        subprocess.run(["skopeo", "copy", "--quiet", "--src-tls-verify=false", "--dest-tls-verify=false",
                        "docker://%s/bench/big:latest" % source.host, "docker://%s/s/x:v1" % target.host], check=True)
        return
    kind, _plus, extra = step.partition("+")
    args = {"images": [{"source": "%s/bench/big:latest" % source.host, "target": "%s/o/x:v1" % target.host}],
            "progress": False}
    if kind == "relay":
        args["cache"] = False
    else:
        args["cache_dir"] = str(Path(work) / "cache")
    args.update(json.loads(extra) if extra else {})
    path = Path(work) / "args.json"
    path.write_text(json.dumps({"ANSIBLE_MODULE_ARGS": args}))
    proc = subprocess.run([sys.executable, "-m", MODULE, str(path)], env=dict(os.environ, PYTHONPATH=str(collections)),
                          stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, check=False)
    result = json.loads(proc.stdout.decode()[proc.stdout.decode().index("{"):])
    if result.get("failed"):
        raise SystemExit("%s failed: %s" % (step, result.get("msg")))
    shutil.rmtree(str(Path(work) / "cache"), ignore_errors=True)


def main():
    argv = [a for a in sys.argv[1:] if a != "--timeline"]
    size = int(argv[0]) if argv and argv[0].isdigit() else 1400
    steps = [a for a in argv if not a.isdigit()] or ["skopeo", "cached", "relay"]
    disk = root_disk()
    work = tempfile.mkdtemp(prefix="disk-timeline-", dir=str(REPO / "bench"))
    try:
        collections = make_collections_dir(Path(work) / "collections")
        bench.WARM["mb"] = int(1.5 * size)
        _image, layout = bench.build_image(size, 6, work)
        with Registry() as source:
            bench.seed_layout(layout, source, "bench/big:latest")
            shutil.rmtree(str(layout))
            for step in steps:
                with Registry() as target:
                    bench.settle()
                    sampler = Sampler(disk)
                    sampler.start()
                    start = time.monotonic()
                    copy(step, collections, work, source, target)
                    wall = time.monotonic() - start
                    time.sleep(2 * TICK)  # the last writes of the step land in its own rows
                    sampler.stop.set()
                    sampler.join()
                    rows = sampler.rows
                    print("%-28s wall %6.2f s  disk busy %5.1f s  machine CPU %5.1f CPU-s  written %5.0f MB"
                          % (step, wall, sum(r[2] for r in rows) * TICK / 100,
                             sum(r[3] for r in rows) * TICK / 100 * (os.cpu_count() or 1),
                             sum(r[1] for r in rows) * TICK), flush=True)
                    if "--timeline" in sys.argv:
                        print("    t   MB/s  disk%  cpu%  iowait%")
                        for row in rows:
                            print("%5.1f %6.0f %6.0f %5.0f %7.0f" % row)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
