"""Run a real registry (Debian's ``docker-registry``, Distribution 2.8.2) for a test.

Why a real one: the registry is the thing our client must agree with; a fake would only
agree with our own reading of the spec.

    with Registry() as reg:                      # plain HTTP on 127.0.0.1:<free port>
        requests.get(reg.url + "/v2/")
        reg.access_log()                         # [AccessLogEntry(method, path, status, ...)]

    Registry(config={"auth": {"htpasswd": {"realm": "r", "path": str(htpasswd_file)}}})
    Registry(config={"http": {"tls": {"certificate": crt, "key": key}}})   # url becomes https://

Each instance writes its OWN config to a fresh temp dir (the packaged
/etc/docker/registry/config.yml listens on all interfaces and points htpasswd at a directory)
and keeps its storage there, so registries never share state and nothing outside the temp
dir is touched.

Logs: Distribution writes its access log (Apache combined format) to stdout and its
application log (logrus, level warn) to stderr. Both go to files in the temp dir:
``access.log`` is parsed by :meth:`Registry.access_log` so tests can count requests,
``registry.log`` is quoted in start-up errors.
"""

from __future__ import annotations

import atexit
import copy
import ctypes
import json
import os
import re
import secrets
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

BINARY = "docker-registry"

# 127.0.0.1 - - [27/Nov/2026:23:34:55 +0000] "GET /v2/ HTTP/1.1" 200 2 "" "curl/7.88.1"
_ACCESS_RE = re.compile(
    r'^(?P<remote>\S+) \S+ \S+ \[(?P<time>[^\]]+)\] '
    r'"(?P<method>\S+) (?P<uri>\S+) (?P<proto>[^"]+)" (?P<status>\d{3}) (?P<size>\d+|-)'
    r'(?: "(?P<referer>[^"]*)" "(?P<agent>[^"]*)")?'
)


@dataclass(frozen=True)
class AccessLogEntry:
    method: str
    path: str  # request path without the query string, e.g. /v2/test/app/blobs/sha256:...
    query: str  # raw query string ('' when none)
    status: int
    size: int  # response body bytes as logged ('-' -> 0)
    user_agent: str


def parse_access_log(text: str) -> list[AccessLogEntry]:
    """Parse Distribution's combined-format access log; unparseable lines are skipped."""
    entries = []
    for line in text.splitlines():
        m = _ACCESS_RE.match(line)
        if not m:
            continue
        path, _sep, query = m["uri"].partition("?")
        size = m["size"]
        entries.append(AccessLogEntry(
            method=m["method"], path=path, query=query, status=int(m["status"]),
            size=0 if size == "-" else int(size), user_agent=m["agent"] or "",
        ))
    return entries


def free_port() -> int:
    """A port that was free a moment ago on 127.0.0.1 (racy by nature; callers retry)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def deep_merge(base: dict, override: dict) -> dict:
    """Recursively merge ``override`` into a copy of ``base``; a None value deletes the key."""
    out = copy.deepcopy(base)
    for key, value in override.items():
        if value is None:
            out.pop(key, None)
        elif isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def _die_with_parent() -> None:  # runs in the child between fork and exec
    # PR_SET_PDEATHSIG: if pytest is SIGKILLed the registry gets SIGTERM instead of lingering.
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)
    except OSError:
        pass


def allowing_urls(pattern: str = r"^http://127\.0\.0\.1[:/]") -> dict:
    """Config for a registry that accepts manifests whose (foreign) layers name `urls` matching `pattern`
    (Distribution refuses any manifest with urls unless validation.manifests.urls.allow says so)."""
    return {"validation": {"manifests": {"urls": {"allow": [pattern]}}}}


class RegistryStartError(RuntimeError):
    pass


class Registry:
    """A Distribution registry on 127.0.0.1 with a port picked at run time.

    config:  dict deep-merged into the generated config (e.g. ``auth``, ``http.tls``).
    attempts: how many ports to try when the process dies at start (port taken, races).
    startup_timeout: seconds to wait for ``GET /v2/`` to answer 200 or 401 per attempt.
    keep: keep the temp dir after stop() (for debugging a failing test).
    """

    def __init__(self, config: dict | None = None, *, attempts: int = 5,
                 startup_timeout: float = 15.0, keep: bool = False, binary: str = BINARY):
        self.extra_config = config or {}
        self.attempts = attempts
        self.startup_timeout = startup_timeout
        self.keep = keep
        self.binary = binary
        self.workdir: Path | None = None
        self.port: int | None = None
        self.config: dict = {}
        self._proc: subprocess.Popen | None = None
        self._files: list = []

    # -- properties -------------------------------------------------------------------
    @property
    def host(self) -> str:
        """'127.0.0.1:PORT', the registry part of an image reference."""
        return f"127.0.0.1:{self.port}"

    @property
    def tls(self) -> bool:
        return bool(self.config.get("http", {}).get("tls"))

    @property
    def url(self) -> str:
        """'http://127.0.0.1:PORT' (https when the config enables http.tls)."""
        return f"{'https' if self.tls else 'http'}://{self.host}"

    @property
    def storage_dir(self) -> Path:
        return self.workdir / "storage"

    @property
    def access_log_path(self) -> Path:
        return self.workdir / "access.log"

    @property
    def log_path(self) -> Path:
        return self.workdir / "registry.log"

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    # -- lifecycle ----------------------------------------------------------------------
    def build_config(self, port: int) -> dict:
        base = {
            "version": 0.1,
            "log": {"level": "warn", "formatter": "text", "accesslog": {"disabled": False}},
            "storage": {
                "filesystem": {"rootdirectory": str(self.storage_dir)},
                "delete": {"enabled": True},
                # no blobdescriptor cache: every test sees the storage as it is
            },
            "http": {"addr": f"127.0.0.1:{port}", "secret": secrets.token_hex(16)},
        }
        return deep_merge(base, self.extra_config)

    def start(self) -> "Registry":
        if self.running:
            return self
        self.workdir = Path(tempfile.mkdtemp(prefix="imagepusher-registry-"))
        self.storage_dir.mkdir()
        errors = []
        for _attempt in range(self.attempts):
            self.port = free_port()
            self.config = self.build_config(self.port)
            cfg_path = self.workdir / "config.yml"
            # JSON is valid YAML: no YAML library needed to write the config.
            cfg_path.write_text(json.dumps(self.config, indent=2))
            self._close_files()
            out = open(self.access_log_path, "ab")  # O_APPEND: safe to read while it writes
            err = open(self.log_path, "ab")
            self._files = [out, err]
            self._proc = subprocess.Popen(
                [self.binary, "serve", str(cfg_path)], stdin=subprocess.DEVNULL, stdout=out,
                stderr=err, cwd=self.workdir, preexec_fn=_die_with_parent,
            )
            problem = self._wait_ready()
            if problem is None:
                atexit.register(self._atexit)
                return self
            errors.append(f"port {self.port}: {problem}")
            self._terminate()
        log = self.log_path.read_text(errors="replace")[-4000:]
        self.stop()
        raise RegistryStartError(
            f"{self.binary} did not start after {self.attempts} attempts:\n  "
            + "\n  ".join(errors) + f"\n--- registry log (tail) ---\n{log}"
        )

    def _wait_ready(self) -> str | None:
        """None when GET /v2/ answers 200/401; else a description of what went wrong."""
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE  # test certificates are self-made
        # no proxy: an http_proxy variable in the environment must not catch loopback calls
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}),
                                             urllib.request.HTTPSHandler(context=ctx))
        deadline = time.monotonic() + self.startup_timeout
        last = "no answer"
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                tail = self.log_path.read_text(errors="replace").strip().splitlines()[-3:]
                return f"exited with {self._proc.returncode}: {' | '.join(tail)}"
            try:
                with opener.open(self.url + "/v2/", timeout=2) as r:
                    return None if r.status == 200 else f"GET /v2/ -> {r.status}"
            except urllib.error.HTTPError as e:
                if e.code == 401:  # auth enabled: up and asking for credentials
                    return None
                last = f"GET /v2/ -> {e.code}"
            except (urllib.error.URLError, OSError) as e:
                last = str(getattr(e, "reason", e))
            time.sleep(0.05)
        return f"not ready after {self.startup_timeout}s ({last})"

    def _terminate(self) -> None:
        if self._proc is None:
            return
        if self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        self._proc = None

    def _close_files(self) -> None:
        for f in self._files:
            f.close()
        self._files = []

    def _atexit(self) -> None:
        self._terminate()

    def stop(self) -> None:
        """Stop the process and remove the temp dir (unless keep=True). Idempotent."""
        self._terminate()
        self._close_files()
        atexit.unregister(self._atexit)
        if self.workdir and not self.keep:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> "Registry":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # -- observation ---------------------------------------------------------------------
    def access_log(self, since: int = 0, settle: float = 0.05) -> list[AccessLogEntry]:
        """Parsed access-log entries, from entry number ``since`` on.

        The registry logs a request just after sending its response, so a client can
        finish before the line is written: wait until the file stops growing for
        ``settle`` seconds (at most 2 s) before reading.
        """
        deadline = time.monotonic() + 2
        size = -1
        while time.monotonic() < deadline:
            new = os.path.getsize(self.access_log_path)
            if new == size:
                break
            size = new
            time.sleep(settle)
        return parse_access_log(self.access_log_path.read_text(errors="replace"))[since:]

    def mark(self) -> int:
        """Number of access-log entries so far: pass to access_log(since=...) later."""
        return len(self.access_log())

    def requests(self, method: str | None = None, path_contains: str = "", since: int = 0):
        """Access-log entries filtered by method and a substring of the path."""
        return [e for e in self.access_log(since) if (method is None or e.method == method)
                and path_contains in e.path]

    def __repr__(self) -> str:
        return f"<Registry {self.url} running={self.running}>"
