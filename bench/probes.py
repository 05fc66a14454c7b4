"""What every timed step of the benchmarks uses: the same memory state to start from, the peak RSS of a process,
and the CPU seconds of a process or of the whole machine.

bench/run.py re-exports settle and PeakRSS (fleet.py, ab_trees.py and module_run.py use them through it or here).
"""

import os
import threading
import time

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def process_cpu(pid):
    """CPU seconds (user + system) process `pid` has used so far."""
    with open("/proc/%d/stat" % pid) as handle:
        fields = handle.read().rsplit(")", 1)[1].split()  # after the command name, which may hold spaces
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def machine_cpu():
    """(busy, iowait): CPU seconds the whole machine, all CPUs together, has spent busy (neither idle nor
    waiting on I/O) and waiting on I/O so far (/proc/stat)."""
    with open("/proc/stat") as handle:
        ticks = [int(v) for v in handle.readline().split()[1:9]]
    return (sum(ticks) - ticks[3] - ticks[4]) / CLOCK_TICKS, ticks[4] / CLOCK_TICKS


class PeakRSS:
    """Largest VmHWM of the processes whose script (the first argument after the interpreter) contains
    `marker` (or of one pid).

    Known pids are read every `interval`. The process list is rescanned, every `rescan`
    seconds, only while none of them lives (before a task's module starts, between tasks):
    scanning all of /proc costs CPU that the run being measured would otherwise have. VmHWM
    is a high-water mark, so reading it late loses nothing while the process lives. With one
    pid, its read and write system calls (syscr + syscw of /proc/PID/io) are read too: the
    count at the last poll, so the last `interval` before it exits is left out.
    """

    def __init__(self, marker=None, pid=None, interval=0.05, rescan=0.25):
        self.marker, self.pid, self.interval, self.rescan = marker, pid, interval, rescan
        self.peak_kb = self.syscalls = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _pids(self):
        if self.pid:
            return [self.pid]
        found = []
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                try:
                    with open("/proc/%s/cmdline" % entry, "rb") as handle:
                        args = handle.read().split(b"\0")
                    # The script itself (`python AnsiballZ_image_pull.py`), not a process naming it as an argument:
                    # async_wrapper (`python async_wrapper.py JID LIMIT AnsiballZ_image_pull.py _`) waits alive
                    # for the whole module run, and while a process found lives the list is not scanned again.
                    if len(args) > 1 and self.marker.encode() in args[1]:
                        found.append(int(entry))
                except OSError:
                    pass
        return found

    def _run(self):
        pids, scanned, alive = [], 0.0, False
        while not self._stop.is_set():
            if not alive and time.monotonic() - scanned >= self.rescan:
                pids, scanned = self._pids(), time.monotonic()
            alive = False
            for pid in pids:
                try:
                    with open("/proc/%d/status" % pid) as handle:
                        for line in handle:
                            if line.startswith("VmHWM:"):
                                self.peak_kb = max(self.peak_kb, int(line.split()[1]))
                    if self.pid:
                        self._read_syscalls()
                    alive = True
                except OSError:
                    pass
            time.sleep(self.interval)

    def _read_syscalls(self):
        with open("/proc/%d/io" % self.pid) as handle:
            counts = dict(line.split(":", 1) for line in handle if line.startswith("sysc"))
        self.syscalls = max(self.syscalls, sum(int(value) for value in counts.values()))

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()

    @property
    def mb(self):
        return self.peak_kb / 1024.0


# Memory touched and freed before each timed step; main() sizes it from the image.
WARM = {"mb": 0}


def settle():
    """Start every timed step from the same state.

    Dirty pages are flushed: the previous step's writes (gigabytes into the registries and
    caches) would otherwise be written back during, and charged to, the next step. Then
    WARM["mb"] of memory is touched and freed. On a VM that hands free memory back to the host
    (free page reporting), a page the guest has not touched lately costs a fault on the host
    when it is used again: about 3 s per GB here. A registry ingesting an image writes it
    into fresh page-cache pages, so a step ran up to 30% faster when the step before it had
    just freed page cache (skopeo writing an OCI layout, a registry torn down) than after one
    that had not (our pull, which writes around the page cache): what ran before decided
    the result. With recently used memory freed right before every step, none does.
    """
    os.sync()
    if WARM["mb"]:
        memory = bytearray(WARM["mb"] << 20)
        memory[::4096] = b"\x01" * len(range(0, len(memory), 4096))  # one write per page
        del memory
