"""The live part of ``GET /api/v1/status`` and of systemd's STATUS= line: what only the running daemon knows.

The API merges this with the database's numbers; it is called from API threads, so it only reads snapshots.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any

from storage import ImageState

if TYPE_CHECKING:
    from daemon.watch import InboxWatcher, WatcherThread
    from daemon.worker import Worker, WorkerThread


class LiveStatus:
    """Watcher health per inbox, worker state, device, precision, model version, uptime."""

    def __init__(self, started_at: datetime, clock: Callable[[], float] = time.monotonic) -> None:
        self._started_at = started_at
        self._started = clock()
        self._clock = clock
        self.watcher: InboxWatcher | None = None
        self.watcher_thread: WatcherThread | None = None
        self.worker: Worker | None = None
        self.worker_thread: WorkerThread | None = None
        self.state = "starting"

    def __call__(self) -> dict[str, Any]:
        worker = self.worker.status() if self.worker is not None else {}
        if self.worker_thread is not None:
            worker["thread_alive"] = self.worker_thread.is_alive()
        watchers: dict[str, Any] = {}
        if self.watcher is not None:
            watchers = {health.name: health.as_dict() for health in self.watcher.health()}
        return {
            "daemon": self.state,
            "started_at": self._started_at.isoformat(),
            "uptime_seconds": round(self._clock() - self._started, 1),
            "device": worker.get("device"),
            "precision": worker.get("precision"),
            "model_version": worker.get("model_version"),
            "analyser": worker.get("analyser"),
            "watchers": watchers,
            "watcher_thread_alive": self.watcher_thread.is_alive() if self.watcher_thread is not None else False,
            "worker": worker,
        }


def status_line(counts: Mapping[ImageState, int]) -> str:
    """systemd's one-line STATUS=: the queue depth first, since that is what an admin looks for."""
    return (
        f"{counts.get(ImageState.QUEUED, 0)} queued, {counts.get(ImageState.PROCESSING, 0)} processing, "
        f"{counts.get(ImageState.DONE, 0)} done, {counts.get(ImageState.FAILED, 0)} failed"
    )
