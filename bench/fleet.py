#!/usr/bin/env python
"""`make bench` fleet rows: many small images through the mirror_images role against `skopeo sync`.

BENCH_FLEET_IMAGES images (default 300: 100 repositories x 3 tags), each a shared 4 MB base layer
plus a small layer of its own, seeded into loopback registry A. Then, alternating who goes first
from round to round, each round measures:

- cold: ours = one ansible-playbook applying the mirror_images role (one image_mirror task over
  the list) with an empty cache into an empty registry; skopeo = `skopeo sync --src yaml --dest
  docker` from a YAML source naming the same repositories and tags, into an empty registry;
- warm: the same again, every target current.

Each cold run gets a registry of its own (a registry already holding the blobs, or one skopeo's
blob-info cache knows a mount source in, would measure nothing). Its files are deleted at the end of
the bench, with the caches, not when the run is over: the thousands of inodes a registry's storage
frees would slow every file the next run creates for a minute or more (ext4 skips recently freed
inodes one by one), and that cleanup is no part of the next copy. Ansible's start-up is included
in our times, as it is what a user waits for; the same play around `ansible.builtin.ping` is
reported beside it. The results replace the fleet section of bench/RESULTS.md (or --out), and go
to bench/results.json (key "fleet") and the chart bench/results.svg beside it. `--smoke`: 6 images,
one round, nothing recorded (JSON and chart in a temporary directory).
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
from urllib.parse import urljoin

import requests

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))
sys.path.insert(0, str(BENCH.parent))

import run as bench  # noqa: E402  (bench/run.py: settle, timed_playbook, PING, ROLE)
from results_file import draw_chart, replace_section, save_numbers  # noqa: E402
from tests.support import images, seed  # noqa: E402
from tests.support.ansible import AnsibleWorkspace  # noqa: E402
from tests.support.registry import Registry  # noqa: E402

BEGIN, END = "<!-- fleet rows: bench/fleet.py -->", "<!-- end of fleet rows -->"
TAGS = 3


def seed_fleet(registry, count):
    """`count` images over count/TAGS repositories sharing one 4 MB base layer; the base is uploaded
    once and mounted into every other repository. Returns {repository: [tags]}."""
    base = images.random_layer(4, seed=31337)
    session = requests.Session()
    session.trust_env = False
    repos = {}
    for n in range(count):
        repo, tag = "fleet/app%03d" % (n // TAGS), "v%d" % (n % TAGS)
        if repo not in repos and repos:
            answer = session.post("%s/v2/%s/blobs/uploads/" % (registry.url, repo),
                                  params={"mount": base.digest, "from": "fleet/app000"})
            if answer.status_code == 202:  # not mounted: an upload session was opened instead; close it
                session.delete(urljoin(registry.url + "/", answer.headers["Location"]))
        image = images.build_image([base, images.tar_layer({"app/%d" % n: b"x" * (n + 1)})])
        seed.push(registry.url, repo, image, tag, session=session)
        repos.setdefault(repo, []).append(tag)
    return repos


def timed_sync(yaml_path, dest):
    bench.settle()
    start = time.monotonic()
    proc = subprocess.run(["skopeo", "sync", "--src", "yaml", "--dest", "docker", "--dest-tls-verify=false",
                           str(yaml_path), dest], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, check=False)
    elapsed = time.monotonic() - start
    if proc.returncode != 0:
        raise SystemExit("skopeo sync failed: %s" % proc.stderr.decode()[-2000:])
    return elapsed


def write_source_yaml(path, registry, repos):
    lines = ["%s:" % registry.host, "  tls-verify: false", "  images:"]
    lines += ["    %s: [%s]" % (repo, ", ".join(tags)) for repo, tags in sorted(repos.items())]
    path.write_text("\n".join(lines) + "\n")


def summary(values):
    return "%.2f (%.2f-%.2f)" % (statistics.median(values), min(values), max(values))


def one_round(n, ws, source, repos, work, rows, kept):
    def entries_for(host):
        return [{"source": "%s/%s:%s" % (source.host, repo, tag), "target": "%s/ours/%s:%s" % (host, repo, tag)}
                for repo, tags in sorted(repos.items()) for tag in tags]

    def fresh_registry():
        registry = Registry(keep=True)
        kept.append(registry)
        return registry

    def ours():
        with fresh_registry() as fresh:
            extra = {"entries": entries_for(fresh.host), "cache": str(Path(work) / ("cache-%d" % n))}
            cold, _rss, first = bench.timed_playbook(ws, bench.ROLE, extra)
            mark = fresh.mark()
            warm, _rss, _run = bench.timed_playbook(ws, bench.ROLE, extra)
            rows["ours_warm_requests"].append(len(fresh.access_log(since=mark)))
        rows["ours_cold"].append(cold)
        rows["ours_warm"].append(warm)

    def skopeo():
        with fresh_registry() as fresh:
            cold = timed_sync(Path(work) / "source.yaml", "%s/skopeo" % fresh.host)
            warm = timed_sync(Path(work) / "source.yaml", "%s/skopeo" % fresh.host)
        rows["skopeo_cold"].append(cold)
        rows["skopeo_warm"].append(warm)

    for step in ((ours, skopeo) if n % 2 == 0 else (skopeo, ours)):
        step()
    print("round %d: cold ours %.2fs skopeo %.2fs | warm ours %.2fs skopeo %.2fs"
          % (n + 1, rows["ours_cold"][-1], rows["skopeo_cold"][-1], rows["ours_warm"][-1], rows["skopeo_warm"][-1]),
          flush=True)


def report(opts, rows, repos):
    def ratio(ours, theirs):
        return statistics.median(rows[ours]) / statistics.median(rows[theirs])
    count = sum(len(tags) for tags in repos.values())
    return "\n".join([
        BEGIN,
        "## Fleet: %d small images (%d repositories x %d tags, one shared 4 MB base layer)" % (count, len(repos), TAGS),
        "",
        "`make bench` (bench/fleet.py; %s), two loopback Distribution 2.8 registries, median (min-max) of %d"
        " round(s). Ours: one `ansible-playbook` applying the `mirror_images` role (one `image_mirror` task,"
        " `image_concurrency` 4, `concurrency` 4), Ansible's start-up included; skopeo: `skopeo sync --src yaml"
        " --dest docker` from a YAML source naming the same repositories and tags."
        % (time.strftime("%Y-%m-%d"), opts.rounds),
        "",
        "| measure | ours | skopeo sync | ratio ours/skopeo | target |",
        "| --- | --- | --- | --- | --- |",
        "| cold (empty cache, empty registry) | %s | %s | %.2f | <= 0.6 |"
        % (summary(rows["ours_cold"]), summary(rows["skopeo_cold"]), ratio("ours_cold", "skopeo_cold")),
        "| warm (every target current) | %s | %s | %.2f | <= 1.0 |"
        % (summary(rows["ours_warm"]), summary(rows["skopeo_warm"]), ratio("ours_warm", "skopeo_warm")),
        "",
        "Ansible alone, the same play running `ansible.builtin.ping`: %s s. Requests reaching the target"
        " registry in our warm run: %d (one manifest HEAD per image)."
        % (summary(rows["floor"]), max(rows["ours_warm_requests"])),
        END,
    ])


def chart_rows(rows, count):
    """The time rows bench/chart.py draws (the same numbers as the table)."""
    return [{"measure": "%d images, cold, against skopeo sync" % count, "ours": rows["ours_cold"],
             "skopeo": rows["skopeo_cold"], "target": "<= 0.6"},
            {"measure": "%d images, warm, against skopeo sync" % count, "ours": rows["ours_warm"],
             "skopeo": rows["skopeo_warm"], "target": "<= 1.0"}]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=int(os.environ.get("BENCH_FLEET_IMAGES", "300")))
    parser.add_argument("--rounds", type=int, default=int(os.environ.get("BENCH_FLEET_ROUNDS", "3")))
    parser.add_argument("--out", default=str(BENCH / "RESULTS.md"))
    parser.add_argument("--no-write", action="store_true", help="print the rows, leave RESULTS.md alone")
    parser.add_argument("--smoke", action="store_true", help="6 images, one round, nothing recorded: checks the harness")
    opts = parser.parse_args()
    if opts.smoke:
        opts.images, opts.rounds, opts.no_write = 6, 1, True
    bench.WARM["mb"] = 512  # what the registries and the cache touch in a run, and some
    rows = dict((key, []) for key in ("ours_cold", "ours_warm", "skopeo_cold", "skopeo_warm", "ours_warm_requests",
                                      "floor"))
    work = tempfile.mkdtemp(prefix="imagepusher-fleet-")
    kept = []  # the stopped registries of the rounds, whose storage goes at the end
    try:
        with Registry() as source, AnsibleWorkspace(Path(work) / "ansible") as ws:
            print("seeding %d images ..." % opts.images, flush=True)
            repos = seed_fleet(source, opts.images)
            write_source_yaml(Path(work) / "source.yaml", source, repos)
            for n in range(opts.rounds):
                one_round(n, ws, source, repos, work, rows, kept)
            rows["floor"] = [bench.timed_playbook(ws, bench.PING, {})[0] for _n in range(opts.rounds)]
    finally:
        shutil.rmtree(work, ignore_errors=True)  # the caches of every round
        for registry in kept:
            if registry.workdir:
                shutil.rmtree(registry.workdir, ignore_errors=True)
    section = report(opts, rows, repos)
    print("\n" + section)
    folder = Path(tempfile.mkdtemp(prefix="imagepusher-fleet-smoke-")) if opts.no_write else Path(opts.out).parent
    save_numbers(folder / "results.json", "fleet", {"images": opts.images, "rounds": opts.rounds, "series": rows,
                                                    "time_rows": chart_rows(rows, sum(map(len, repos.values())))})
    if not opts.no_write:
        replace_section(Path(opts.out), BEGIN, END, section)
        print("written to %s" % opts.out)
    print(draw_chart(folder / "results.json", folder / "results.svg"))


if __name__ == "__main__":
    main()
