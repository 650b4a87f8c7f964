"""Recording outcomes on a thread of their own, several per transaction, while the worker keeps the engine busy.

A commit waits for the disk (SQLite's ``synchronous = FULL``, the archive's folder fsyncs); done on the worker's
thread, that wait would leave the engine idle for each image. The committer takes whatever outcomes have arrived,
records the ``done`` ones in one transaction, and sleeps on the queue otherwise: under load many images share one
fsync, and an idle daemon still commits each image at once. The worker waits for the queue to drain at the end of
its batch (:meth:`Committer.flush`), so a batch is fully recorded when ``loop_once`` returns.
"""

from __future__ import annotations

import logging
import queue
import threading

from daemon.worker.leases import LeaseKeeper
from daemon.worker.priority import lower_thread_priority
from daemon.worker.record import Pending, Recorder

log = logging.getLogger(__name__)

MAX_GROUP = 64
"""Outcomes recorded together at most (bounds one transaction's length)."""

_STOP = object()
"""The sentinel that ends the thread once everything before it was recorded."""


class Committer:
    """Owns the recording thread: ``start()``, ``submit(...)``, ``flush()``, ``stop()`` (drains, then joins)."""

    def __init__(self, recorder: Recorder, leases: LeaseKeeper, max_group: int = MAX_GROUP, nice: int = 0) -> None:
        self._recorder = recorder
        self._nice = nice
        self._leases = leases
        self._max_group = max_group
        self._queue: queue.Queue[object] = queue.Queue()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="enhancerd-commit", daemon=False)
        self._thread.start()

    def submit(self, item: Pending) -> None:
        if not self.is_alive():  # not started, or stopped: record here rather than lose it
            self._record([item])
            return
        self._queue.put(item)

    def flush(self) -> None:
        """Wait until everything submitted so far is recorded."""
        if self.is_alive():
            self._queue.join()

    def stop(self, timeout: float = 60.0) -> None:
        """Record what is queued, then end and join the thread."""
        if self._thread is None:
            return
        self._queue.put(_STOP)
        self._thread.join(timeout)
        if self._thread.is_alive():
            log.error("the recording thread did not stop within %.0f s", timeout)

    def is_alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def _run(self) -> None:
        lower_thread_priority(self._nice)
        while True:
            first = self._queue.get()
            if first is _STOP:
                self._queue.task_done()
                return
            group = [first]
            stop = False
            while len(group) < self._max_group:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is _STOP:
                    stop = True
                    break
                group.append(item)
            try:
                self._record([item for item in group if isinstance(item, Pending)])
            finally:
                for _ in range(len(group) + stop):
                    self._queue.task_done()
            if stop:
                return

    def _record(self, items: list[Pending]) -> None:
        # untracked before the commit: a renewal between the two would otherwise report the lease as lost
        self._leases.untrack([item.image.id for item in items])
        try:
            self._recorder.record_many(items)
        except Exception:  # record_many guards itself; this keeps the thread alive whatever happens
            log.exception("recording %d outcome(s) failed", len(items))
