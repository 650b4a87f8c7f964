"""The thread that drives a :class:`~daemon.worker.worker.Worker` in the daemon.

``stop()`` lets the batch in flight finish within ``finish_timeout`` seconds (what is not finished by then is given
back to the queue), joins the thread, then shuts the worker down (its pool and lease renewal joined too).
"""

from __future__ import annotations

import logging
import threading
import time

from daemon.worker.priority import lower_thread_priority
from daemon.worker.worker import Worker

log = logging.getLogger(__name__)

IDLE_SECONDS = 0.5
"""Longest idle wait between two looks at the queue when nobody wakes the worker (retries coming due, API requeues)."""

ERROR_BACKOFF_SECONDS = 2.0
"""Pause after a loop iteration raised (e.g. the database is unreachable), so an outage does not spin."""

FINISH_TIMEOUT_SECONDS = 60.0
"""Default time a stopping worker gives its batch in flight before handing the rest back to the queue."""


class WorkerThread:
    """Runs ``worker.loop_once`` until stopped."""

    def __init__(
        self,
        worker: Worker,
        *,
        idle_seconds: float = IDLE_SECONDS,
        name: str = "enhancerd-worker",
    ) -> None:
        self.worker = worker
        self._idle = idle_seconds
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=False)
        self.failures = 0
        self.last_iteration: float | None = None
        """``time.monotonic()`` at the end of the last iteration (a heartbeat)."""

    def start(self) -> None:
        """Initialize the worker on the caller's thread (recovery errors surface here), then start the loop."""
        self.worker.initialize()
        try:
            self._thread.start()
        except BaseException:
            self.worker.shutdown()
            raise

    def stop(self, finish_timeout: float = FINISH_TIMEOUT_SECONDS) -> bool:
        """Finish or give back the batch in flight, join the thread and shut the worker down; True if it ended."""
        self._stop.set()
        self.worker.request_stop(finish_within=finish_timeout)
        ended = True
        if self._thread.ident is not None:
            # the batch gets finish_timeout; the images cut off then are released, which needs a few more seconds
            self._thread.join(finish_timeout + 30.0)
            ended = not self._thread.is_alive()
            if not ended:
                log.error("worker thread did not stop in time; its images return to the queue when their leases end")
        # even when the loop is stuck (a forward pass that will not end), its helper threads must end, or the
        # process could not exit; the loop itself ends after that pass, seeing the stop
        self.worker.shutdown()
        return ended

    def is_alive(self) -> bool:
        return self._thread.is_alive()

    def _run(self) -> None:
        lower_thread_priority(self.worker.settings.worker.nice)  # and the engine's threads, started from this one
        while not self._stop.is_set():
            try:
                claimed = self.worker.loop_once(wait=False)
            except Exception:
                self.failures += 1
                log.exception("worker loop failed")
                self._stop.wait(ERROR_BACKOFF_SECONDS)
                continue
            self.last_iteration = time.monotonic()
            if not claimed and not self._stop.is_set():
                self.worker.wait_for_work(self._idle)
