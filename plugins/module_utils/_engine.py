# -*- coding: utf-8 -*-
# Copyright: contributors to imagepusher.registry
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The copy engine: executes the blob steps of a plan between endpoints, and reports.

It knows three shapes of work, whatever the endpoints are:

- fetch: source -> cache (`cache.put_blob(digest, size, source)`: verified, resumable),
- send: store -> target (`target.put_blob(digest, size, store, mount_from, on_bytes)`: mounted or uploaded),
- copy: source -> target through the cache in one pass. A blob the target lacks and the
  cache holds none of is downloaded into the cache while the very same buffer is uploaded
  (`target.stream_blob(digest, size, handoff)`, see _handoff.py); the upload is completed
  only once the cache verified the digest. Every other blob is fetched (when the cache
  lacks it) and then sent from the cache. A broken stream whose download still verified
  the blob is sent from the cache afterwards.

Work runs on bounded pools; every step runs to its end (no transfer is abandoned half-way)
and then the first failure is raised. What each step really did comes back as an Outcome
keyed by digest; the plan itself is never changed. `events` sees each blob start, its
bytes as they move (downloads), and its end: the hook for progress reporting.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import threading

from ansible_collections.imagepusher.registry.plugins.module_utils import _plan
from ansible_collections.imagepusher.registry.plugins.module_utils._handoff import Handoff
from ansible_collections.imagepusher.registry.plugins.module_utils._parallel import Pool, parallel_map


class Events:
    """What the engine reports while it runs; this base ignores everything.

    image_started/image_finished come from the jobs' callers (an image is one or more engine runs).
    """

    def image_started(self, label):
        pass

    def for_image(self, label):
        """The events of one image among several running at once (here: these same events)."""
        return self

    def planned(self, steps):
        """The blob steps an engine run is about to move (their sizes are its total)."""

    def blob_started(self, step):
        pass

    def bytes_moved(self, step, count):
        pass

    def blob_finished(self, step, outcome):
        pass

    def image_finished(self, label):
        pass


class _Outcomes:
    """Outcomes by digest, written from several threads."""

    def __init__(self, initial=None):
        self._lock = threading.Lock()
        self.by_digest = dict(initial or {})

    def __contains__(self, digest):
        with self._lock:
            return digest in self.by_digest

    def record(self, digest, outcome):
        with self._lock:
            self.by_digest[digest] = outcome
        return outcome


class Engine:
    def __init__(self, concurrency=4, events=None):
        self.concurrency = max(1, concurrency)
        self.events = events or Events()

    # -- one side at a time ----------------------------------------------------------

    def fetch(self, steps, source, cache, done=None):
        """Run the fetch steps not yet `done` ({digest: Outcome}); returns every outcome by digest."""
        return self._each(steps, done, lambda step: self._fetch(step, source, cache))

    def send(self, steps, store, target, done=None):
        """Mount or upload the send steps not yet `done`; returns every outcome by digest."""
        return self._each(steps, done, lambda step: self._send(step, store, target))

    def _each(self, steps, done, run):
        outcomes = _Outcomes(done)
        todo = [s for s in steps if s.moves and s.digest not in outcomes]
        self.events.planned(todo)
        parallel_map(lambda step: outcomes.record(step.digest, run(step)), todo, self.concurrency)
        return outcomes.by_digest

    def _fetch(self, step, source, cache, tee=None):
        self.events.blob_started(step)
        action, count = cache.put_blob(step.digest, step.size, source, tee=tee,
                                       on_bytes=lambda n: self.events.bytes_moved(step, n))
        outcome = _plan.Outcome(action, count)
        self.events.blob_finished(step, outcome)
        return outcome

    def _send(self, step, store, target):
        self.events.blob_started(step)
        outcome = _plan.Outcome(*target.put_blob(step.digest, step.size, store, mount_from=step.mount_from,
                                                 on_bytes=lambda n: self.events.bytes_moved(step, n)))
        self.events.blob_finished(step, outcome)
        return outcome

    # -- both sides in one pass ----------------------------------------------------------

    def copy(self, pairs, source, cache, target, done=None):
        """Run (fetch, send) step pairs source -> cache -> target; returns (fetch outcomes, send outcomes)."""
        run = _CopyRun(self, source, cache, target, done)
        self.events.planned([fetch if fetch.moves else send for fetch, send in pairs
                             if send.moves or (fetch.moves and fetch.digest not in (done or {}))])
        run.start(sorted(pairs, key=lambda pair: -pair[1].size))
        if run.errors:
            raise run.errors[0]
        return run.fetched.by_digest, run.sent.by_digest


class _CopyRun:
    """One copy's pools and shared state; see Engine.copy."""

    def __init__(self, engine, source, cache, target, done):
        self.engine = engine
        self.source, self.cache, self.target = source, cache, target
        self.fetched = _Outcomes(done)
        self.sent = _Outcomes()
        self.errors = []
        self._lock = threading.Lock()

    def start(self, pairs):
        concurrency = self.engine.concurrency
        # Three pools, so that no kind of work waits for a slot another kind holds: downloads,
        # the uploads streaming beside them, and uploads from the cache. A download's thread is
        # free once it handed over its last byte: the next download starts while the target
        # still ingests what the sockets hold and answers the upload (on a busy target, that
        # is most of a second per blob), hence twice as many streams as downloads.
        with Pool(concurrency) as self.uploads, Pool(2 * concurrency) as self.streams, Pool(concurrency) as fetches:
            for fetch, send in pairs:
                fetches.submit(self.fetch, fetch, send)
            # Leaving the block waits for the fetches first (they start everything else), then the
            # streams, then the uploads from the cache.

    def failed(self, exc):
        with self._lock:
            self.errors.append(exc)

    def fetch(self, fetch, send):
        try:
            if self._streamable(fetch, send):
                handoff = Handoff(send.size)
                self.streams.submit(self.stream, send, handoff)
                self._download(fetch, handoff)
                return
            if fetch.moves and fetch.digest not in self.fetched:
                self.fetched.record(fetch.digest, self.engine._fetch(fetch, self.source, self.cache))
        except Exception as exc:  # collected: the first failure is raised by Engine.copy
            self.failed(exc)
            return
        with self._lock:
            if not self.errors and send.moves:
                self.uploads.submit(self.upload, send)

    def _streamable(self, fetch, send):
        # Checked again now: another run may have started this blob since it was planned.
        return (_plan.streamable(fetch, send) and fetch.digest not in self.fetched
                and self.cache.partial_size(fetch.digest) == 0)

    def _download(self, fetch, handoff):
        """Download into the cache, handing every stored chunk to the upload beside it."""
        try:
            self.fetched.record(fetch.digest, self.engine._fetch(fetch, self.source, self.cache, tee=handoff))
        except BaseException:
            handoff.abort("the download failed")
            raise
        handoff.finish()

    def stream(self, send, handoff):
        try:
            self.sent.record(send.digest, _plan.Outcome(_plan.UPLOADED, self.target.stream_blob(
                send.digest, send.size, handoff)))
            return
        except Exception:  # a broken stream is not an error yet, see below
            pass
        # The download reports its own failure; a blob it verified into the cache is uploaded
        # from there, with retries and resumable sessions.
        if handoff.wait_download() and not self.errors:
            self.upload(send)

    def upload(self, send):
        try:
            self.sent.record(send.digest, self.engine._send(send, self.cache, self.target))
        except Exception as exc:  # collected: the first failure is raised by Engine.copy
            self.failed(exc)
