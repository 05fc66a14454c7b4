"""image_mirror with cache: false against the cached one-pass mirror and skopeo copy, alternating.

    .venv/bin/python bench/no_cache.py [ROUNDS] [MB]

Registry A holds an image of 6 incompressible layers (1.4 GB by default); each step copies it
to a fresh registry B: image_mirror run as a module process (Ansible left out, as in
ab_trees.py) with `cache: false` (module args `images: [{source, target}]`, `cache: false`),
the same with a fresh cache_dir, and `skopeo copy docker://A docker://B`. The order rotates
by round, every step starts from the same memory state (run.py's settle()). Per step: wall
time, CPU seconds and peak RSS of the process, file system outputs it caused (GNU time's %O, in 512-byte
blocks), and the requests each registry logged.
"""

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

import run as bench  # noqa: E402
from tests.support.ansible import make_collections_dir  # noqa: E402
from tests.support.registry import Registry  # noqa: E402

MODULE = "ansible_collections.imagepusher.registry.plugins.modules.image_mirror"


def measured(command, env=None):
    """(wall s, cpu s, peak RSS MiB, blocks written, stdout) of one process.

    Through GNU time: a child forked from this (large) process would report our own RSS as its peak."""
    bench.settle()
    with tempfile.NamedTemporaryFile("r") as report:
        proc = subprocess.run(["/usr/bin/time", "-o", report.name, "-f", "%e %U %S %M %O"] + command, env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, check=False)
        if proc.returncode:
            raise SystemExit("%s failed (%d): %s" % (command[0], proc.returncode, proc.stdout[-2000:]))
        wall, user, system, rss, written = report.read().split()[-5:]
    return float(wall), float(user) + float(system), int(rss) / 1024.0, int(written), proc.stdout


def module_step(collections, work, source, target, cache):
    args = {"images": [{"source": "%s/bench/big:latest" % source.host, "target": "%s/nc/x:v1" % target.host}],
            "progress": False}
    if cache:
        args["cache_dir"] = str(Path(work) / "cache")
    else:
        args["cache"] = False
    path = Path(work) / "args.json"
    path.write_text(json.dumps({"ANSIBLE_MODULE_ARGS": args}))
    result = measured([sys.executable, "-m", MODULE, str(path)], dict(os.environ, PYTHONPATH=str(collections)))
    if json.loads(result[-1]).get("failed"):
        raise SystemExit("module failed: %s" % result[-1][-2000:])
    shutil.rmtree(str(Path(work) / "cache"), ignore_errors=True)
    return result[:-1]


def skopeo_step(source, target):
    return measured(["skopeo", "copy", "--quiet", "--src-tls-verify=false", "--dest-tls-verify=false",
                     "docker://%s/bench/big:latest" % source.host, "docker://%s/nc/x:v1" % target.host])[:-1]


def main():
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 4
    size = int(sys.argv[2]) if len(sys.argv) > 2 else 1400
    names = ["cache false", "cached", "skopeo"]
    results = dict((name, []) for name in names)
    with tempfile.TemporaryDirectory(dir=str(REPO.parent)) as work:
        bench.WARM["mb"] = int(1.5 * size)
        _image, layout = bench.build_image(size, 6, work)
        collections = make_collections_dir(Path(work) / "collections", REPO)
        with Registry() as source:
            bench.seed_layout(layout, source, "bench/big")
            for number in range(rounds):
                for name in names[number % 3:] + names[:number % 3]:
                    with Registry() as target:
                        mark = source.mark()
                        if name == "skopeo":
                            row = skopeo_step(source, target)
                        else:
                            row = module_step(collections, work, source, target, name == "cached")
                        requests = (len(source.access_log(since=mark)), len(target.access_log()))
                    results[name].append(row + requests)
                    print("round %d %-11s wall %6.2f s  cpu %5.2f s  rss %6.1f MiB  written %8d blocks  "
                          "requests A %d B %d" % ((number + 1, name) + row + requests), flush=True)
    for name in names:
        columns = list(zip(*results[name]))
        wall, cpu, rss = (bench.summary(columns[i]) for i in range(3))
        print("%-11s wall %.2f s (%.2f-%.2f)  cpu %.2f s (%.2f-%.2f)  rss %.1f MiB  written %d blocks" % (
            (name,) + wall + cpu[:1] + cpu[1:] + rss[:1] + (bench.summary(columns[3])[0],)))


if __name__ == "__main__":
    main()
