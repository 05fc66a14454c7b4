"""Run real ``ansible-playbook`` (from the venv) against the collection in this work tree.

How results come back (the one approach used everywhere): a test-only callback plugin,
tests/support/callback/result_dump.py, is enabled next to the normal stdout callback and
appends every task result as one JSON line to a file named by $IMAGEPUSHER_TEST_RESULTS.
So tests assert on structured results (``run.results``, ``run.task("name")``) and the
human-readable output stays in ``run.stdout`` for failure messages. It works for failed
tasks, check mode, diff, loops, and even for a run killed half-way (lines are written as
tasks finish).

Isolation: each AnsibleWorkspace is a temp dir holding
  collections/ansible_collections/imagepusher/registry -> symlink to the repo root
  home/  (HOME: so ~/.ansible, ~/.cache/imagepusher, ~/.docker are the test's own)
  run/   (XDG_RUNTIME_DIR: podman's auth.json lives there)
  tmp/   (ANSIBLE_LOCAL_TEMP / ANSIBLE_REMOTE_TEMP)
  ansible.cfg (empty; ANSIBLE_CONFIG points at it so no other ansible.cfg is read)
  runs/NNN/ (playbook.yml, extra_vars.json, results.jsonl, stdout.txt, stderr.txt per run)
ANSIBLE_* variables from the caller's environment are dropped; the rest is inherited.
The inventory is ``localhost ansible_connection=local ansible_python_interpreter=<venv
python>`` because the modules need requests/jsonschema, which live in the venv.

    ws = AnsibleWorkspace()                         # or the ``ansible`` pytest fixture
    run = ws.run_playbook(PLAYBOOK_TEXT, {"src": ref}, check=True, diff=True)
    rc, out, err = run                              # unpacks like a tuple
    assert run.task("pull").result["changed"]

    m = ws.run_module("image_pull", {"name": ref, "cache_dir": str(d)}, check=True)
    assert m.rc == 0 and m.changed and m.result["digest"] == img.digest

    proc = ws.start_playbook(...); ...; proc.kill(); run = proc.wait()   # SIGKILL mid-run

Module args are written into the playbook as JSON (valid YAML), so string values are still
templated by Ansible: don't put ``{{`` in them unless you mean Jinja.
"""

from __future__ import annotations

import itertools
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from tests.support import REPO_ROOT

NAMESPACE, NAME = "imagepusher", "registry"
CALLBACK_DIR = Path(__file__).resolve().parent / "callback"
# Dropped from the inherited environment so a developer's settings (or credentials) cannot
# change what the tests see.
_DROP_PREFIXES = ("ANSIBLE_",)
# The modules' compiled module_utils (plugins/module_utils/_bytecode_cache.py), shared by every workspace of
# every test process: each workspace has its own HOME, and its own cache would mean compiling them again in
# every test's first task. Keyed by the sources' hashes, so a changed file is never served stale. A value set
# in the caller's environment wins (IMAGEPUSHER_BYTECODE_CACHE=off: the tests as without the cache).
SHARED_BYTECODE_DIR = Path(tempfile.gettempdir()) / f"imagepusher-test-bytecode-{os.geteuid()}"
_DROP_VARS = ("DOCKER_CONFIG", "REGISTRY_AUTH_FILE", "XDG_CACHE_HOME", "XDG_CONFIG_HOME",
              "XDG_RUNTIME_DIR", "IMAGEPUSHER_TEST_RESULTS")


def make_collections_dir(dest, src=REPO_ROOT) -> Path:
    """Create ``dest/ansible_collections/imagepusher/registry`` -> ``src`` and return
    ``dest``: the directory to put on ANSIBLE_COLLECTIONS_PATH (or sys.path, to import
    ``ansible_collections.imagepusher.registry.plugins...`` in unit tests)."""
    dest = Path(dest)
    ns = dest / "ansible_collections" / NAMESPACE
    ns.mkdir(parents=True, exist_ok=True)
    link = ns / NAME
    if not link.is_symlink():
        link.symlink_to(Path(src).resolve(), target_is_directory=True)
    return dest


def descendants(pid: int) -> list[int]:
    """Every process below `pid` (breadth first), read from /proc."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                ppid = int(Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry))
    found, queue = [], [pid]
    while queue:
        for child in children.get(queue.pop(0), []):
            found.append(child)
            queue.append(child)
    return found


def workspace_processes(path: Path) -> list[int]:
    """Processes whose command line names something under `path` (a workspace's temp dirs)."""
    needle = str(path).encode() + b"/"
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit() and int(entry) != os.getpid():
            try:
                if needle in Path(f"/proc/{entry}/cmdline").read_bytes():
                    found.append(int(entry))
            except OSError:
                continue
    return found


def _running(pid: int) -> bool:
    """True while `pid` exists and is not a zombie."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


@dataclass
class PlaybookRun:
    rc: int
    stdout: str
    stderr: str
    results: list[dict]  # one record per task result (see callback/result_dump.py)
    run_dir: Path
    duration: float = 0.0

    def __iter__(self):  # rc, stdout, stderr = run_playbook(...)
        return iter((self.rc, self.stdout, self.stderr))

    def task(self, name: str, host: str = "localhost") -> "TaskRecord":
        """The last result of the task called ``name`` (AssertionError if none)."""
        for rec in reversed(self.results):
            if rec["task"] == name and rec["host"] == host:
                return TaskRecord(rec)
        raise AssertionError(f"no result for task {name!r}; tasks: "
                             f"{[r['task'] for r in self.results]}\n{self.output}")

    @property
    def last(self) -> "TaskRecord":
        if not self.results:
            raise AssertionError(f"no task result recorded\n{self.output}")
        return TaskRecord(self.results[-1])

    @property
    def output(self) -> str:
        """stdout + stderr, for assertion messages."""
        return f"--- stdout ---\n{self.stdout}\n--- stderr ---\n{self.stderr}"


@dataclass
class TaskRecord:
    record: dict = field(repr=False)

    @property
    def status(self) -> str:  # ok | changed | failed | skipped | unreachable
        return self.record["status"]

    @property
    def result(self) -> dict:
        return self.record["result"]

    @property
    def changed(self) -> bool:
        return bool(self.result.get("changed"))

    @property
    def failed(self) -> bool:
        return self.status in ("failed", "unreachable")

    @property
    def warnings(self) -> list[str]:
        return self.record.get("warnings", [])


@dataclass
class ModuleRun:
    """Result of run_module: the module's result dict plus the whole run for messages."""

    rc: int
    result: dict
    status: str
    run: PlaybookRun

    @property
    def changed(self) -> bool:
        return bool(self.result.get("changed"))

    @property
    def failed(self) -> bool:
        return self.status in ("failed", "unreachable")

    @property
    def msg(self) -> str:
        return self.result.get("msg", "")


class PlaybookProcess:
    """A running ansible-playbook (its own process group, so kill() reaches the module)."""

    def __init__(self, proc: subprocess.Popen, run_dir: Path, timeout: float):
        self.proc = proc
        self.run_dir = run_dir
        self.timeout = timeout
        self.started = time.monotonic()

    @property
    def pid(self) -> int:
        return self.proc.pid

    def kill(self, sig: int = signal.SIGKILL) -> None:
        """Signal ansible-playbook AND every process under it, the module included.

        Signalling the process group is not enough: ansible-core 2.19's WorkerProcess calls
        os.setsid() (executor/process/worker.py, _detach), so the worker and the module it
        runs live in another session and would keep going. The tree is collected first
        (children are reparented once their parent dies), then each pid is signalled,
        deepest first, and we wait until none is left running.

        A module the collection's action runs as an async job (progress, see
        plugins/plugin_utils/_progress_action.py) is a daemon outside that tree: it is found by
        the workspace's remote temp directory in its command line, as the module was.
        """
        pids = [self.proc.pid] + descendants(self.proc.pid)
        pids += [pid for pid in workspace_processes(self.run_dir.parent.parent / "tmp") if pid not in pids]
        for pid in reversed(pids):
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
        if sig == signal.SIGKILL:
            deadline = time.monotonic() + 10
            while any(_running(pid) for pid in pids) and time.monotonic() < deadline:
                time.sleep(0.02)

    def results(self) -> list[dict]:
        """Task records written so far (readable while the run goes on)."""
        path = self.run_dir / "results.jsonl"
        if not path.exists():
            return []
        lines = path.read_text(encoding="utf-8").splitlines()
        return [json.loads(line) for line in lines if line.strip()]

    def wait(self, timeout: float | None = None) -> PlaybookRun:
        timeout = self.timeout if timeout is None else timeout
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            self.proc.wait()
            raise AssertionError(f"ansible-playbook still running after {timeout}s; killed\n"
                                 + self._read_output().output) from None
        return self._read_output()

    def _read_output(self) -> PlaybookRun:
        def read(n):
            return (self.run_dir / n).read_text(encoding="utf-8", errors="replace")

        return PlaybookRun(self.proc.returncode, read("stdout.txt"), read("stderr.txt"),
                           self.results(), self.run_dir, time.monotonic() - self.started)


class AnsibleWorkspace:
    """Temp dirs + environment for running ansible-playbook on this collection (see module
    docstring). ``collection_src`` is the tree mounted as imagepusher.registry."""

    def __init__(self, base_dir=None, *, collection_src=REPO_ROOT, python: str | None = None):
        self._own_dir = base_dir is None
        self.root = Path(base_dir or tempfile.mkdtemp(prefix="imagepusher-ansible-"))
        self.python = python or sys.executable  # the venv's python when run via make
        self.ansible_playbook = str(Path(self.python).parent / "ansible-playbook")
        self.collections_dir = make_collections_dir(self.root / "collections", collection_src)
        self.home = self.root / "home"
        for d in (self.home, self.root / "run", self.root / "tmp", self.root / "runs"):
            d.mkdir(parents=True, exist_ok=True)
        (self.root / "run").chmod(0o700)
        (self.root / "ansible.cfg").write_text("[defaults]\n")
        self.inventory = self.root / "inventory.ini"
        self.inventory.write_text(f"localhost ansible_connection=local "
                                  f"ansible_python_interpreter={self.python}\n")
        self._counter = itertools.count(1)

    @property
    def cache_dir(self) -> Path:
        """The modules' default cache location inside this workspace's HOME."""
        return self.home / ".cache" / "imagepusher"

    def env(self, results_file: Path | None = None, extra: dict | None = None) -> dict:
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(_DROP_PREFIXES) and k not in _DROP_VARS}
        env.update({
            "HOME": str(self.home),
            "XDG_RUNTIME_DIR": str(self.root / "run"),
            "LC_ALL": "C.UTF-8",  # ansible-core refuses to run without a UTF-8 locale
            "PATH": f"{Path(self.python).parent}{os.pathsep}{env.get('PATH', '/usr/bin:/bin')}",
            "ANSIBLE_CONFIG": str(self.root / "ansible.cfg"),
            "ANSIBLE_HOME": str(self.home / ".ansible"),
            "ANSIBLE_COLLECTIONS_PATH": str(self.collections_dir),
            "ANSIBLE_COLLECTIONS_SCAN_SYS_PATH": "False",
            "ANSIBLE_LOCAL_TEMP": str(self.root / "tmp" / "local"),
            "ANSIBLE_REMOTE_TEMP": str(self.root / "tmp" / "remote"),
            "ANSIBLE_NOCOLOR": "1",
            "ANSIBLE_FORCE_COLOR": "0",
            "ANSIBLE_STDOUT_CALLBACK": "ansible.builtin.default",
            "ANSIBLE_CALLBACK_RESULT_FORMAT": "yaml",  # readable in assertion messages
            "ANSIBLE_CALLBACK_PLUGINS": str(CALLBACK_DIR),
            "ANSIBLE_CALLBACKS_ENABLED": "result_dump",
            "ANSIBLE_GATHERING": "explicit",  # no fact gathering unless a play asks
            "ANSIBLE_RETRY_FILES_ENABLED": "False",
            "ANSIBLE_LOCALHOST_WARNING": "False",
            "ANSIBLE_INVENTORY_UNPARSED_WARNING": "False",
            "ANSIBLE_HOST_KEY_CHECKING": "False",
            # Progress adds display lines (and, with become, an async job) to every transferring task; the
            # tests of that path turn it back on (test_progress.py, the oldest-core smoke run, ansible-test).
            "IMAGEPUSHER_PROGRESS": "false",
            "IMAGEPUSHER_BYTECODE_CACHE": os.environ.get("IMAGEPUSHER_BYTECODE_CACHE", str(SHARED_BYTECODE_DIR)),
        })
        if results_file is not None:
            env["IMAGEPUSHER_TEST_RESULTS"] = str(results_file)
        env.update(extra or {})
        return {name: value for name, value in env.items() if value is not None}  # None in `extra`: unset

    def start_playbook(self, playbook, extra_vars: dict | None = None, *, check=False,
                       diff=False, env: dict | None = None, timeout: float = 300,
                       args=()) -> PlaybookProcess:
        """Start ansible-playbook in the background (own process group); see run_playbook."""
        run_dir = self.root / "runs" / f"{next(self._counter):03d}"
        run_dir.mkdir()
        if isinstance(playbook, Path) or ("\n" not in playbook and Path(playbook).is_file()):
            pb_path = Path(playbook).resolve()
        else:
            pb_path = run_dir / "playbook.yml"
            pb_path.write_text(playbook)
        cmd = [self.ansible_playbook, "-i", str(self.inventory), str(pb_path)]
        if extra_vars:
            # a file, not argv: keeps JSON types and keeps secrets out of `ps`
            (run_dir / "extra_vars.json").write_text(json.dumps(extra_vars))
            cmd += ["-e", f"@{run_dir / 'extra_vars.json'}"]
        if check:
            cmd.append("--check")
        if diff:
            cmd.append("--diff")
        cmd += list(args)
        with open(run_dir / "stdout.txt", "wb") as out, open(run_dir / "stderr.txt", "wb") as err:
            proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=err,
                                    cwd=self.root, start_new_session=True,
                                    env=self.env(run_dir / "results.jsonl", env))
        return PlaybookProcess(proc, run_dir, timeout)

    def run_playbook(self, playbook, extra_vars: dict | None = None, *, check=False,
                     diff=False, env: dict | None = None, timeout: float = 300,
                     args=()) -> PlaybookRun:
        """Run a playbook (a path, or YAML text) and wait. ``env`` adds/overrides variables (None unsets one);
        ``args`` are extra ansible-playbook arguments (e.g. ["-vvv"])."""
        return self.start_playbook(playbook, extra_vars, check=check, diff=diff, env=env,
                                   timeout=timeout, args=args).wait()

    def run_module(self, module: str, module_args: dict | None = None, *, check=False,
                   diff=False, extra_vars: dict | None = None, env: dict | None = None,
                   timeout: float = 300, args=()) -> ModuleRun:
        """Run one module as a one-task play on localhost and return its result.

        ``module``: short name (``image_pull`` -> imagepusher.registry.image_pull) or FQCN.
        """
        fqcn = module if "." in module else f"{NAMESPACE}.{NAME}.{module}"
        play = [{"name": "run module", "hosts": "localhost", "gather_facts": False,
                 "tasks": [{"name": "module under test", fqcn: module_args or {}}]}]
        run = self.run_playbook(json.dumps(play, indent=2) + "\n", extra_vars, check=check,
                                diff=diff, env=env, timeout=timeout, args=args)
        recs = [r for r in run.results if r["task"] == "module under test"]
        if not recs:
            raise AssertionError(f"{fqcn} produced no task result (rc={run.rc})\n{run.output}")
        return ModuleRun(run.rc, recs[-1]["result"], recs[-1]["status"], run)

    def cleanup(self) -> None:
        if self._own_dir:
            shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> "AnsibleWorkspace":
        return self

    def __exit__(self, *exc) -> None:
        self.cleanup()


# -- one-shot helpers (a fresh workspace per call unless one is passed) ---------------------
def run_playbook(playbook, extra_vars: dict | None = None, *, check=False, diff=False,
                 env: dict | None = None, timeout: float = 300, args=(),
                 workspace: AnsibleWorkspace | None = None) -> PlaybookRun:
    if workspace is not None:
        return workspace.run_playbook(playbook, extra_vars, check=check, diff=diff, env=env,
                                      timeout=timeout, args=args)
    with AnsibleWorkspace() as ws:
        return ws.run_playbook(playbook, extra_vars, check=check, diff=diff, env=env,
                               timeout=timeout, args=args)


def run_module(module: str, module_args: dict | None = None, *, check=False, diff=False,
               extra_vars: dict | None = None, env: dict | None = None, timeout: float = 300,
               args=(), workspace: AnsibleWorkspace | None = None) -> ModuleRun:
    if workspace is not None:
        return workspace.run_module(module, module_args, check=check, diff=diff,
                                    extra_vars=extra_vars, env=env, timeout=timeout, args=args)
    with AnsibleWorkspace() as ws:
        return ws.run_module(module, module_args, check=check, diff=diff,
                             extra_vars=extra_vars, env=env, timeout=timeout, args=args)


run_module_json = run_module  # the name used in the test plan
