"""Where the CPU of a cold fleet goes: ours through ansible-playbook against skopeo sync.

    .venv/bin/python bench/fleet_cpu.py [IMAGES] [ROUNDS]

The images of bench/fleet.py (300 by default: 100 repositories x 3 tags, one shared 4 MB base
layer) seeded into registry A; each round copies them cold into a fresh registry B with the
bench's role play (bench/run.py ROLE, progress on as a user gets it) and with `skopeo sync`.
Per run: wall time; the CPU seconds of the whole machine (`/proc/stat`: user + system, both
vCPUs) and their share of 2 x wall; the CPU seconds of each registry (`/proc/<pid>/stat`); and the
rest, which is the client side: Ansible (controller, workers, polls) and our module, or skopeo.
With progress the module runs as an async job, a process Ansible does not wait for: the client
side is split into the processes this script waited for (Ansible's, or skopeo) and the others
(our module, and anything else the machine ran meanwhile).

Why: it says what the cold fleet's wall time can come down to on this machine. Where the machine
is busy most of the run, wall time cannot fall below (machine CPU seconds / vCPUs).
"""

import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))
sys.path.insert(0, str(BENCH.parent))

import fleet  # noqa: E402
import run as bench  # noqa: E402
from probes import machine_cpu, process_cpu  # noqa: E402
from tests.support.ansible import AnsibleWorkspace  # noqa: E402
from tests.support.registry import Registry  # noqa: E402

CPUS = os.cpu_count() or 1


def measured(label, run, source, target):
    bench.settle()
    # Registry keeps its process in _proc: the test support's registries are this script's own children.
    before = (machine_cpu()[0], process_cpu(source._proc.pid), process_cpu(target._proc.pid), children_cpu())
    start = time.monotonic()
    run()
    wall = time.monotonic() - start
    machine = machine_cpu()[0] - before[0]
    src, dst = process_cpu(source._proc.pid) - before[1], process_cpu(target._proc.pid) - before[2]
    waited = children_cpu() - before[3]
    print("%-7s wall %6.2f s  machine %5.1f CPU-s (%3.0f %% of %d x wall)  source registry %5.1f  target registry "
          "%5.1f  client side %5.1f (processes waited for %5.1f, others %5.1f)"
          % (label, wall, machine, 100 * machine / (CPUS * wall), CPUS, src, dst, machine - src - dst, waited,
             machine - src - dst - waited), flush=True)


def children_cpu():
    """CPU seconds of the processes this script waited for: ansible-playbook, its workers and their
    commands (not an async job: Ansible does not wait for it), or skopeo."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def ours(ws, extra):
    run = ws.run_playbook(bench.ROLE, extra, timeout=1800, env={"IMAGEPUSHER_PROGRESS": "true"})  # as timed_playbook
    if run.rc != 0:
        raise SystemExit("playbook failed:\n%s" % run.output[-4000:])


def main():
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 300
    rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 2
    with tempfile.TemporaryDirectory(prefix="fleet-cpu-", dir=str(BENCH)) as work, Registry() as source:
        repos = fleet.seed_fleet(source, count)
        fleet.write_source_yaml(Path(work) / "source.yaml", source, repos)
        with AnsibleWorkspace() as ws:
            for number in range(rounds):
                with Registry() as target:
                    entries = [{"source": "%s/%s:%s" % (source.host, repo, tag),
                                "target": "%s/ours/%s:%s" % (target.host, repo, tag)}
                               for repo, tags in sorted(repos.items()) for tag in tags]
                    extra = {"entries": entries, "cache": str(Path(work) / ("cache-%d" % number))}
                    measured("ours", lambda: ours(ws, extra), source, target)
                with Registry() as target:
                    measured("skopeo", lambda: subprocess.run(
                        ["skopeo", "sync", "--src", "yaml", "--dest", "docker", "--dest-tls-verify=false",
                         str(Path(work) / "source.yaml"), "%s/skopeo" % target.host],
                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True), source, target)


if __name__ == "__main__":
    main()
