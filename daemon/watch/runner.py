"""A thread that drives :class:`InboxWatcher` for callers that do not run their own loop.

It owns the watcher's lifecycle (``start`` starts both, ``stop`` stops and joins both) and hands ready files to a
callback on its own thread; a callback that raises gets the files back later, so nothing discovered is dropped.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from daemon.watch import defaults
from daemon.watch.model import ReadyFile
from daemon.watch.stability import Clock
from daemon.watch.watcher import InboxWatcher

logger = logging.getLogger(__name__)


class WatcherThread:
    """Calls ``watcher.loop_once`` every ``interval`` seconds until stopped; ready files go to ``on_ready``."""

    def __init__(
        self,
        watcher: InboxWatcher,
        on_ready: Callable[[list[ReadyFile]], None],
        *,
        interval: float = defaults.LOOP_INTERVAL_SECONDS,
        clock: Clock = time.monotonic,
        name: str = "enhancerd-watcher",
    ) -> None:
        if interval <= 0:
            raise ValueError("interval must be > 0")
        self.watcher = watcher
        self._on_ready = on_ready
        self._interval = interval
        self._clock = clock
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=False)
        self.failures = 0
        """Iterations that raised (loop or callback); written by the thread only."""
        self.last_iteration: float | None = None
        """``clock()`` at the end of the last iteration: a heartbeat that shows the loop is not stuck (e.g. on NFS)."""

    def start(self) -> None:
        """Start the observers (errors surface here), then the loop thread."""
        self.watcher.start()
        try:
            self._thread.start()
        except BaseException:
            self.watcher.stop()
            raise

    def stop(self, timeout: float = defaults.STOP_TIMEOUT_SECONDS) -> bool:
        """Stop the loop and the observers and join them; True when the loop thread ended in time."""
        self._stop.set()
        if self._thread.ident is not None:
            self._thread.join(timeout)
        self.watcher.stop()
        ended = not self._thread.is_alive()
        if not ended:
            logger.error("watcher thread did not stop within %.1f s", timeout)
        return ended

    def is_alive(self) -> bool:
        """Whether the loop thread runs (for the systemd watchdog).

        A dead observer does not count: the loop restarts it, and a missing inbox folder (an unmounted share) should
        show in the status, not get the daemon killed by systemd; see ``watcher.health()`` for each inbox.
        """
        return self._thread.is_alive()

    def __enter__(self) -> WatcherThread:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _run(self) -> None:
        while not self._stop.is_set():
            self._step()
            self.last_iteration = self._clock()
            self._stop.wait(self._interval)

    def _step(self) -> None:
        try:
            ready = self.watcher.loop_once(self._clock())
        except Exception:
            self.failures += 1
            logger.exception("watcher loop failed")
            return
        if not ready:
            return
        try:
            self._on_ready(ready)
        except Exception:
            self.failures += 1
            logger.exception("handing %d ready file(s) on failed; they will be reported again", len(ready))
            self.watcher.requeue(ready)
