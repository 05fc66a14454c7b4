# -*- coding: utf-8 -*-
# Copyright: contributors to imagepusher.registry
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Group commit: changes to one file that the threads of a process ask for, written once for all of them.

The cache's name files (index.json, sources.json) are read whole, changed and written back with
an fsync under a lock, once per image. Images of one task run in parallel, so while one thread
writes, the others queue on the lock with their own change. Here each caller leaves its change
in a queue, then takes the lock: whoever holds it applies every queued change in one read and one
write, and a caller whose change another thread already wrote returns as soon as it gets the lock.
A caller still returns only once its own change is on disk (or has failed), as before: only the
number of writes falls, from one per image to about one per batch of images in parallel.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import threading

_QUEUES = {}  # a lock file's path -> its _Queue, shared by every Cache object of the process
_QUEUES_GUARD = threading.Lock()


class _Ticket:
    def __init__(self, change):
        self.change = change
        self.done = False
        self.value = None
        self.error = None

    def settle(self, value=None, error=None):
        self.value, self.error, self.done = value, error, True


class _Queue:
    def __init__(self):
        self.guard = threading.Lock()
        self.tickets = []

    def take(self):
        with self.guard:
            tickets, self.tickets = self.tickets, []
            return tickets


def queue_for(path):
    with _QUEUES_GUARD:
        return _QUEUES.setdefault(path, _Queue())


def commit(path, lock, change, apply):
    """Apply `change` to the file guarded by the lock file `path`; its own result.

    `lock()` gives the (file) lock to hold while writing. `apply(changes)` runs under it with every
    change queued so far (this one included, in the order they came), writes the file once, and
    returns one result per change: a value, or an exception that is raised to that change's caller
    only. An exception raised by `apply` itself fails every change of the batch.
    """
    queue = queue_for(path)
    ticket = _Ticket(change)
    with queue.guard:
        queue.tickets.append(ticket)
    with lock():
        # A ticket is settled only under the lock, so once we hold it, ours is either done or still queued.
        if not ticket.done:
            _apply(queue.take(), apply)
    if ticket.error is not None:
        raise ticket.error
    return ticket.value


def _apply(tickets, apply):
    try:
        results = apply([t.change for t in tickets])
    except BaseException as exc:  # the one write failed: no change of the batch is on disk, each caller says so
        for ticket in tickets:
            ticket.settle(error=exc)
        if not isinstance(exc, Exception):
            raise  # an interrupt goes on in the thread it reached
        return
    for ticket, result in zip(tickets, results):
        if isinstance(result, BaseException):
            ticket.settle(error=result)
        else:
            ticket.settle(value=result)
