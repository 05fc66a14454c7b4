"""A loopback TCP proxy that slows what flows back to the client.

Why: to SIGKILL a pull in the middle of a blob, the blob must still be flowing when the
kill lands; on loopback a 48 MiB blob arrives in a few milliseconds. Put this proxy between
the client and the registry and the download takes as long as the test needs.

    with ThrottleProxy("127.0.0.1", reg.port, rate=4 * MiB) as proxy:
        pull from f"{proxy.host}/test/large:v1"   # 127.0.0.1:<proxy port>
        ...
        proxy.bytes_down                          # bytes sent to clients so far
        proxy.rate = None                         # lift the limit mid-test

The rate is one budget shared by all connections (parallel downloads do not multiply it).
Client->server bytes are not throttled. Plain TCP: it forwards HTTP and TLS alike, but the
registry must accept the proxy's Host (Distribution does).
"""

from __future__ import annotations

import socket
import threading
import time

MiB = 1024 * 1024


class _Limiter:
    """Shared budget: each chunk gets a send slot ``len/rate`` seconds after the previous."""

    def __init__(self, rate):
        self.rate = rate
        self._next = time.monotonic()
        self._lock = threading.Lock()

    def wait(self, n: int, stop: threading.Event) -> None:
        rate = self.rate
        if not rate:
            return
        with self._lock:
            now = time.monotonic()
            self._next = max(self._next, now) + n / rate
            due = self._next
        delay = due - time.monotonic()
        if delay > 0:
            stop.wait(delay)

    def chunk(self) -> int:
        # ~20 slots per second keeps the rate smooth; never above 64 KiB per send
        rate = self.rate
        return 65536 if not rate else max(1, min(65536, int(rate / 20)))


class ThrottleProxy:
    """Forward 127.0.0.1:<free port> -> target_host:target_port, ``rate`` bytes/s downstream
    (None = unlimited). Context manager; all threads are daemons; stop() closes everything."""

    def __init__(self, target_host: str, target_port: int, rate: float | None = None):
        self.target = (target_host, int(target_port))
        self._limiter = _Limiter(rate)
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._bytes_down = 0
        self._bytes_up = 0
        self._conns: set[socket.socket] = set()
        self._threads: list[threading.Thread] = []
        self._listener: socket.socket | None = None
        self.connections = 0  # accepted so far
        self.port: int | None = None

    # -- public -----------------------------------------------------------------------
    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.host}"

    @property
    def rate(self):
        return self._limiter.rate

    @rate.setter
    def rate(self, value) -> None:
        self._limiter.rate = value

    @property
    def bytes_down(self) -> int:
        """Bytes sent to clients (server -> client) since start."""
        with self._lock:
            return self._bytes_down

    @property
    def bytes_up(self) -> int:
        with self._lock:
            return self._bytes_up

    def start(self) -> "ThrottleProxy":
        lst = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        lst.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        lst.bind(("127.0.0.1", 0))
        lst.listen(64)
        lst.settimeout(0.2)  # accept() wakes up to notice stop()
        self._listener = lst
        self.port = lst.getsockname()[1]
        self._spawn(self._accept_loop)
        return self

    def drop_connections(self) -> None:
        """Cut every open connection (the listener keeps accepting new ones)."""
        with self._lock:
            conns = list(self._conns)
        for c in conns:
            _shutdown(c)

    def stop(self) -> None:
        self._stop.set()
        if self._listener is not None:
            self._listener.close()
        self.drop_connections()
        for t in self._threads:
            t.join(timeout=2)

    def __enter__(self) -> "ThrottleProxy":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # -- internals -------------------------------------------------------------------------
    def _spawn(self, fn, *args) -> None:
        t = threading.Thread(target=fn, args=args, daemon=True)
        t.start()
        self._threads = [x for x in self._threads if x.is_alive()] + [t]

    def _accept_loop(self) -> None:
        while not self._stop.is_set():
            try:
                client, _addr = self._listener.accept()
            except socket.timeout:
                continue
            except OSError:
                return  # listener closed
            try:
                upstream = socket.create_connection(self.target, timeout=5)
                upstream.settimeout(None)
            except OSError:
                client.close()
                continue
            client.settimeout(None)
            with self._lock:
                self.connections += 1
                self._conns.update((client, upstream))
            self._spawn(self._pipe, client, upstream, False)
            self._spawn(self._pipe, upstream, client, True)

    def _pipe(self, src: socket.socket, dst: socket.socket, downstream: bool) -> None:
        try:
            while not self._stop.is_set():
                size = self._limiter.chunk() if downstream else 65536
                data = src.recv(size)
                if not data:
                    break
                if downstream:
                    self._limiter.wait(len(data), self._stop)
                    if self._stop.is_set():
                        break
                dst.sendall(data)
                with self._lock:
                    if downstream:
                        self._bytes_down += len(data)
                    else:
                        self._bytes_up += len(data)
        except OSError:
            pass
        finally:
            # half-close is not worth the complexity here: end both directions
            for s in (src, dst):
                _shutdown(s)
                with self._lock:
                    self._conns.discard(s)
            src.close()


def _shutdown(s: socket.socket) -> None:
    try:
        s.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
