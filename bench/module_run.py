"""One process measured: a module run directly (`python -m <module> args.json`, PYTHONPATH at a collection tree), or skopeo.

What bench/run.py, bench/ab_trees.py and bench/push_pieces.py measure when Ansible would only add
its own (equal) cost and noise. Each run starts from the same memory state (probes.settle()); the
process's wall time, CPU seconds (its own rusage, from wait4) and peak RSS (VmHWM, as
probes.PeakRSS reads it) come back with its result. HOME and XDG_CACHE_HOME point into `work`, so a module
that falls back to its default cache never writes into the user's.
"""

import collections
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from probes import PeakRSS, settle

PACKAGE = "ansible_collections.imagepusher.registry.plugins.modules."

ModuleRun = collections.namedtuple("ModuleRun", "wall cpu peak_mb result syscalls")
Measured = collections.namedtuple("Measured", "wall cpu peak_mb returncode output syscalls")


def run_process(argv, env=None):
    """Run `argv` from the same memory state; returns a Measured (read/write syscalls as PeakRSS counts them)."""
    settle()
    with tempfile.TemporaryFile() as out:
        start = time.monotonic()
        proc = subprocess.Popen(argv, env=env, stdout=out, stderr=subprocess.STDOUT)
        with PeakRSS(pid=proc.pid) as rss:
            # wait4: this process's own CPU time, not that of every child reaped so far. (Not its ru_maxrss: that
            # keeps the RSS of the forked copy of this process from before exec, 60 MB here, whatever ran.)
            _pid, status, usage = os.wait4(proc.pid, 0)
        wall = time.monotonic() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        output = out.read().decode(errors="replace")
    return Measured(wall, usage.ru_utime + usage.ru_stime, rss.mb, proc.returncode, output, rss.syscalls)


def _result(output):
    """The module's JSON result: its last line that parses as a JSON object (warnings may come before)."""
    for line in reversed(output.splitlines()):
        if line.startswith("{"):
            try:
                return json.loads(line)
            except ValueError:
                continue
    return None


def run_module(root, args, work, module="image_push", check=True):
    """Run `module` from the collection tree `root` (the directory holding ansible_collections/)
    with `args`; SystemExit when it fails, unless check=False (then the failed result comes back)."""
    path = Path(work) / "args.json"
    path.write_text(json.dumps({"ANSIBLE_MODULE_ARGS": args}))
    home = Path(work) / "module-home"
    home.mkdir(exist_ok=True)
    env = dict(os.environ, PYTHONPATH=str(root), HOME=str(home), XDG_CACHE_HOME=str(home / ".cache"))
    run = run_process([sys.executable, "-m", PACKAGE + module, str(path)], env)
    result = _result(run.output)
    if result is None:
        raise SystemExit("module %s printed no result (rc %d):\n%s" % (module, run.returncode, run.output[-3000:]))
    if check and result.get("failed"):
        raise SystemExit("module %s failed: %s" % (module, result.get("msg")))
    return ModuleRun(run.wall, run.cpu, run.peak_mb, result, run.syscalls)
