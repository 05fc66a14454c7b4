"""Cold fleet, requests against _http.py: image_mirror over N images, IMAGEPUSHER_HTTP=requests vs =client (the default).

    .venv/bin/python bench/fleet_http.py [--images 120] [--rounds 2]

Adapted from the fleet CPU harness (/work/prof/fleet_cpu.py): the module is run directly as a
process (python -m ...image_mirror args.json) on this work tree, into a fresh target registry and
an empty cache each run, the two layers alternating (A B, B A...). Per run: wall, CPU seconds of
the module process and its children (RUSAGE_CHILDREN), CPU of the source and target registries,
and the number of requests the target registry logged. Medians at the end, with the load average.
"""

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))
sys.path.insert(0, str(BENCH.parent))

import fleet  # noqa: E402 pylint: disable=wrong-import-position
from probes import process_cpu  # noqa: E402 pylint: disable=wrong-import-position
from tests.support.ansible import make_collections_dir  # noqa: E402 pylint: disable=wrong-import-position
from tests.support.registry import Registry  # noqa: E402 pylint: disable=wrong-import-position

MODULE = "ansible_collections.imagepusher.registry.plugins.modules.image_mirror"
LAYERS = {"requests": {"IMAGEPUSHER_HTTP": "requests"}, "client": {"IMAGEPUSHER_HTTP": "client"}}


def one_run(layer, source, repos, work, collections):
    with Registry() as target:
        entries = [{"source": "%s/%s:%s" % (source.host, repo, tag), "target": "%s/%s:%s" % (target.host, repo, tag)}
                   for repo, tags in repos.items() for tag in tags]
        args = work / "args.json"
        cache = work / "cache"
        args.write_text(json.dumps({"ANSIBLE_MODULE_ARGS": {"images": entries, "cache_dir": str(cache)}}))
        env = dict(os.environ, PYTHONPATH=str(collections))
        env.pop("IMAGEPUSHER_HTTP", None)
        env.update(LAYERS[layer])
        src0, dst0, mark = process_cpu(source._proc.pid), process_cpu(target._proc.pid), target.mark()
        before, started = resource.getrusage(resource.RUSAGE_CHILDREN), time.monotonic()
        done = subprocess.run([sys.executable, "-m", MODULE, str(args)], env=env, capture_output=True, check=False)
        wall = time.monotonic() - started
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        out = done.stdout.decode()
        result = json.loads(out[out.index("{"):])
        if result.get("failed"):
            raise SystemExit("%s failed: %s" % (layer, result.get("msg")))
        row = {"wall": wall, "cpu": after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime,
               "src": process_cpu(source._proc.pid) - src0, "dst": process_cpu(target._proc.pid) - dst0,
               "requests": len(target.access_log(since=mark))}
        shutil.rmtree(cache, ignore_errors=True)
    print(layer, " ".join("%s %.2f" % (k, v) for k, v in row.items()), "load %.2f" % os.getloadavg()[0], flush=True)
    return row


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--images", type=int, default=120)
    parser.add_argument("--rounds", type=int, default=2)
    opts = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="imagepusher-fleet-http-"))
    collections = make_collections_dir(str(work))
    rows = {layer: [] for layer in LAYERS}
    try:
        with Registry() as source:
            repos = fleet.seed_fleet(source, opts.images)
            for round_ in range(opts.rounds):
                for layer in (list(LAYERS) if round_ % 2 == 0 else list(reversed(list(LAYERS)))):
                    rows[layer].append(one_run(layer, source, repos, work, collections))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    for layer, values in rows.items():
        print("%-9s %s" % (layer, "  ".join("%s %.2f" % (k, statistics.median(v[k] for v in values)) for k in values[0])))


if __name__ == "__main__":
    main()
