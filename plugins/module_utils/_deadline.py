# -*- coding: utf-8 -*-
# Copyright: contributors to imagepusher.registry
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A deadline on every HTTP exchange: `timeout` bounds a stall and a trickle, not one read only.

requests' read timeout applies to each socket read, so a server that sends one byte every
few seconds holds a request (headers or body, either way) for ever. Here a watchdog thread
looks at every connection that is busy with a request: over each window of `timeout`
seconds (the connection's own timeout) it must move at least FLOOR_RATE bytes a second,
counted in both directions by the kernel (TCP_INFO), so a large upload the server reads
slowly but steadily is progress too. A connection below the floor is shut down: the
blocked read or write ends as a dropped connection, which the transport retries and a
transfer resumes from, drawing on its one RetryBudget. A stall or trickle therefore ends
within about 2 * timeout (plus one tick) per attempt.

Where TCP_INFO is unavailable (not Linux) the watchdog cannot see progress and does nothing:
the per-read timeout still applies.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import socket
import struct
import threading
import time
import weakref

FLOOR_RATE = 1024  # bytes per second, averaged over one window of `timeout` seconds
TICK = 0.25  # seconds between two looks at the busy connections
_TCP_INFO = getattr(socket, "TCP_INFO", None)
_BYTES_OFFSET = 120  # struct tcp_info: tcpi_bytes_acked then tcpi_bytes_received (u64 each), Linux >= 4.1


class StallError(Exception):
    """Why the watchdog shut a connection: the message names the floor and the window."""


def moved_bytes(sock):
    """Payload bytes a TCP socket has sent (acknowledged) plus received, or None when unknown."""
    if _TCP_INFO is None or sock is None:
        return None
    try:
        info = sock.getsockopt(socket.IPPROTO_TCP, _TCP_INFO, 256)
    except (OSError, ValueError):
        return None
    if len(info) < _BYTES_OFFSET + 16:
        return None
    acked, received = struct.unpack_from("=QQ", info, _BYTES_OFFSET)
    return acked + received


class _Watch:
    """One busy connection: the thread it works for and the current window."""

    def __init__(self, connection, now):
        self.connection = weakref.ref(connection)
        self.thread = threading.get_ident()
        self.started = now
        self.base = moved_bytes(getattr(connection, "sock", None))
        if self.base is None and getattr(connection, "sock", None) is None:
            self.base = 0  # not connected yet: a new socket starts counting from zero


class Watchdog:
    """Shuts down busy connections that move less than `floor` bytes/s over their timeout."""

    def __init__(self, floor=FLOOR_RATE, tick=TICK, clock=time.monotonic):
        self.floor = floor
        self.tick = tick
        self._clock = clock
        self._lock = threading.Lock()
        self._busy = {}  # id(connection) -> _Watch
        self._stalls = {}  # thread id -> StallError of the connection shut under it
        self._thread = None

    def busy(self, connection):
        """`connection` starts a request for the calling thread: a fresh window."""
        with self._lock:
            self._stalls.pop(threading.get_ident(), None)
            self._busy[id(connection)] = _Watch(connection, self._clock())
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="imagepusher-deadline", daemon=True)
                self._thread.start()

    def idle(self, connection):
        with self._lock:
            self._busy.pop(id(connection), None)

    def take_stall(self):
        """The StallError of a connection shut under the calling thread since its last request, or None."""
        with self._lock:
            return self._stalls.pop(threading.get_ident(), None)

    def _run(self):
        while True:
            time.sleep(self.tick)
            self.check()

    def check(self):
        """Look at every busy connection once; shut those below the floor. Returns how many were shut."""
        now = self._clock()
        with self._lock:
            watches = list(self._busy.items())
        shut = 0
        for key, watch in watches:
            connection = watch.connection()
            if connection is None:
                self.idle_key(key)
                continue
            window = _window(connection)
            sock = getattr(connection, "sock", None)
            moved = moved_bytes(sock)
            if window is None or moved is None:
                continue
            if watch.base is None:
                watch.base = moved
            if now - watch.started < window:
                continue
            if moved - watch.base >= self.floor * window:
                watch.started, watch.base = now, moved  # enough progress: a new window
                continue
            self._shut(key, watch, sock, window, moved - watch.base)
            shut += 1
        return shut

    def idle_key(self, key):
        with self._lock:
            self._busy.pop(key, None)

    def _shut(self, key, watch, sock, window, moved):
        error = StallError("timed out: less than %d bytes/s over the %.0f s timeout, %d bytes moved"
                           % (self.floor, window, moved))
        with self._lock:
            self._busy.pop(key, None)
            self._stalls[watch.thread] = error
        try:
            # The plain socket's shutdown, also under TLS: SSLSocket.shutdown would drop its state under
            # the thread that is blocked reading it. The reader sees the end of the stream.
            socket.socket.shutdown(sock, socket.SHUT_RDWR)
        except OSError:
            pass


def _window(connection):
    """The connection's timeout in seconds (what requests passed), or None when it has none."""
    timeout = getattr(connection, "timeout", None)
    if isinstance(timeout, (int, float)) and not isinstance(timeout, bool) and timeout > 0:
        return max(float(timeout), 1.0)
    return None


WATCHDOG = Watchdog()


def take_stall():
    """The StallError behind the calling thread's last dropped connection, or None (see Watchdog)."""
    return WATCHDOG.take_stall()
