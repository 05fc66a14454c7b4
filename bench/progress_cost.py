"""What progress costs: a task run with progress against the same task without.

    .venv/bin/python bench/progress_cost.py [ROUNDS]

1. One poll as the action runs it for an async job: `cat` of the job's status file and the progress
   file in one shell command (the local connection runs it as /bin/sh -c), timed ROUNDS * 10 times.
2. The same image_pull task through ansible-playbook, with progress: true and progress: false,
   alternating, on a warm cache (nothing moves: what is left is the fixed cost per task).
   Medians of the playbook's wall time. Over the local connection (the module runs as any task, its
   progress file read by a thread), and, when run as root, with become (su, root to root: the async
   job and its polls).
"""

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.support import images, seed  # noqa: E402
from tests.support.ansible import AnsibleWorkspace  # noqa: E402
from tests.support.registry import Registry  # noqa: E402


def poll_cost(rounds):
    with tempfile.TemporaryDirectory() as work:
        job, progress = Path(work) / "j1", Path(work) / "p.json"
        job.write_text(json.dumps({"started": True, "finished": False, "ansible_job_id": "j1"}))
        progress.write_text(json.dumps({"status": {"seq": 1, "text": "x" * 100}, "finals": []}))
        command = "cat -- %s 2>/dev/null; echo; echo MARK; cat -- %s 2>/dev/null" % (job, progress)
        times = []
        for _round in range(rounds):
            started = time.monotonic()
            subprocess.run(["/bin/sh", "-c", command], capture_output=True, check=True)
            times.append(time.monotonic() - started)
    return statistics.median(times)


def task_costs(rounds, become=False):
    times = {True: [], False: []}
    # The test workspace turns progress off on the controller; progress: true needs it back on.
    env = {"IMAGEPUSHER_PROGRESS": "true"}
    extra = {"ansible_become": True, "ansible_become_method": "ansible.builtin.su"} if become else None
    with Registry() as reg, AnsibleWorkspace() as ws:
        seed.push(reg.url, "bench/small", images.oci_single(), "v1")
        args = {"name": "%s/bench/small:v1" % reg.host, "cache_dir": str(ws.root / "cache")}
        ws.run_module("image_pull", args, extra_vars=extra, env=env)
        for number in range(2 * rounds):
            progress = number % 2 == 0
            started = time.monotonic()
            run = ws.run_module("image_pull", dict(args, progress=progress), extra_vars=extra, env=env)
            assert run.rc == 0 and not run.changed, run.run.output
            times[progress].append(time.monotonic() - started)
    return statistics.median(times[True]), statistics.median(times[False])


def main():
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 5
    print("one poll (sh -c cat, two small files): %.1f ms (median of %d)" % (1000 * poll_cost(10 * rounds), 10 * rounds))
    with_progress, without = task_costs(rounds)
    print("warm image_pull task, local connection: %.2f s with progress, %.2f s without (medians of %d), +%.2f s"
          % (with_progress, without, rounds, with_progress - without))
    if os.geteuid() == 0:
        with_progress, without = task_costs(rounds, become=True)
        print("the same with become (an async job): %.2f s with progress, %.2f s without, +%.2f s"
              % (with_progress, without, with_progress - without))
    with open("/proc/loadavg") as handle:
        print("load average: %s" % " ".join(handle.read().split()[:3]))


if __name__ == "__main__":
    main()
