"""The worker: claims queued images in leased batches and runs them through the engine.

Lifecycle ``initialize()`` / ``loop_once(now)`` / ``shutdown()``, so tests step it without threads; the
:class:`~daemon.worker.thread.WorkerThread` drives it in the daemon. One ``loop_once`` claims one batch (dynamic
batching: up to ``batch_size`` images, waiting at most ``max_wait_ms`` for a partial batch to fill), processes it and
records every outcome. Nothing is claimed while the queue is paused.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

import storage
from config import Settings
from daemon.metrics import Metrics
from daemon.worker.analysis import Analyse
from daemon.worker.batch import BatchRunner
from daemon.worker.committer import Committer
from daemon.worker.engines import EngineKey, Engines, ModelUnavailable, model_version
from daemon.worker.leases import LeaseKeeper, make_owner
from daemon.worker.originals import Originals
from daemon.worker.outcome import Outcome, OutcomeKind
from daemon.worker.plan import Planner, Task
from daemon.worker.priority import lower_thread_priority
from daemon.worker.record import EngineInfo, Pending, Recorder
from daemon.worker.recovery import Recovery, RecoveryReport
from storage import Image

log = logging.getLogger(__name__)

ORIGINALS_RETRY_SECONDS = 600.0
"""After an original could not be archived or deleted (disk full, permissions), settle again this much later."""


class Worker:
    """Claims, processes and records batches; see the module docstring. Not thread-safe: one thread drives it."""

    def __init__(
        self,
        settings: Settings,
        sessions: sessionmaker[Session],
        engines: Engines,
        *,
        analyse: Analyse,
        analyser_name: str = "core.analysis",
        metrics: Metrics | None = None,
        clock: Callable[[], datetime] = storage.utcnow,
        owner: str | None = None,
    ) -> None:
        self.settings = settings
        self.owner = owner or make_owner()
        self._sessions = sessions
        self._engines = engines
        self._analyse = analyse
        self._analyser_name = analyser_name
        self._metrics = metrics
        self._clock = clock
        self._planner = Planner(settings, sessions, self.owner)
        self._originals = Originals(sessions, clock)
        self._recorder = Recorder(sessions, settings.worker, self.owner, clock, self._originals, metrics)
        self._leases = LeaseKeeper(sessions, self.owner, settings.worker.lease_seconds, clock)
        self._committer = Committer(self._recorder, self._leases, nice=settings.worker.nice)
        self._pool: ThreadPoolExecutor | None = None
        self._wake = threading.Event()
        self._stop_requested = threading.Event()
        self._abort_at: float | None = None
        self._state_lock = threading.Lock()
        self._busy = 0
        self._paused = False
        self._last_batch_at: datetime | None = None
        self._settle_at: float | None = None
        self._last_splits = 0
        self.recovery: RecoveryReport | None = None

    # --- lifecycle ------------------------------------------------------------------------------------------------

    def initialize(self) -> RecoveryReport:
        """Start the decode pool and lease renewal, then recover what a previous run left behind."""
        threads = max(1, self.settings.worker.decode_threads)
        nice = self.settings.worker.nice
        self._pool = ThreadPoolExecutor(
            max_workers=threads,
            thread_name_prefix="enhancerd-decode",
            initializer=lower_thread_priority,
            initargs=(nice,),
        )
        self._leases.start()
        self._committer.start()
        self._last_splits = self._splits()
        try:
            recovery = Recovery(self.settings, self._sessions, self.owner, self._clock, self._originals)
            self.recovery = recovery.run()
        except BaseException:
            self.shutdown()
            raise
        return self.recovery

    def loop_once(self, now: datetime | None = None, *, wait: bool = True) -> int:
        """Claim and process one batch; returns the number of images claimed (0: nothing to do or paused).

        With ``wait`` (the default) the batch's outcomes are all recorded when this returns; the worker thread passes
        ``wait=False`` so the next batch starts while the last commits of this one are still being written.
        """
        if self._pool is None:
            raise RuntimeError("worker not initialized")
        if self._stop_requested.is_set():
            return 0
        self._settle_if_due()
        with self._sessions() as session:
            paused = storage.is_paused(session)
        with self._state_lock:
            self._paused = paused
        if paused:
            return 0
        images = self._claim(now or self._clock())
        if images:
            self._process(images)
        if wait or not images:
            self._committer.flush()
        return len(images)

    def shutdown(self) -> None:
        """Stop lease renewal and the pool (joined); call after the last ``loop_once``."""
        self._stop_requested.set()
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
        self._committer.stop()
        self._leases.stop()

    def request_stop(self, finish_within: float | None = None) -> None:
        """Ask the batch in flight to finish; images not finished within ``finish_within`` seconds are given back."""
        if finish_within is not None:
            self._abort_at = time.monotonic() + max(0.0, finish_within)
        self._stop_requested.set()
        self._wake.set()

    def wake(self) -> None:
        """New work may be queued (intake, reprocess): stop idling now."""
        self._wake.set()

    def wait_for_work(self, timeout: float) -> None:
        """Idle until woken or ``timeout`` seconds passed."""
        self._wake.wait(timeout)
        self._wake.clear()

    @property
    def stopping(self) -> bool:
        return self._stop_requested.is_set()

    def threads_alive(self) -> bool:
        """Whether the lease renewal and recording threads run (for the systemd watchdog)."""
        return self._leases.is_alive() and self._committer.is_alive()

    def status(self) -> dict[str, Any]:
        """A JSON-ready snapshot for the status endpoint; safe to call from any thread."""
        engine = self._engines.default
        tally = self._recorder.tally
        with self._state_lock:
            busy, paused, last = self._busy, self._paused, self._last_batch_at
        return {
            "owner": self.owner,
            "busy": busy > 0,
            "paused": paused,
            "batch_in_flight": busy,
            "last_batch_at": last.isoformat() if last else None,
            "last_error": tally.last_error,
            "done": tally.done,
            "failed": tally.failed,
            "retried": tally.retried,
            "device": str(engine.device),
            "precision": engine.autocast_name,
            "ensemble": engine.ensemble,
            "model_version": model_version(engine),
            "analyser": self._analyser_name,
            "stopping": self._stop_requested.is_set(),
        }

    # --- one batch ------------------------------------------------------------------------------------------------

    def _claim(self, now: datetime) -> list[Image]:
        worker = self.settings.worker
        images = self._claim_some(worker.batch_size, now)
        if not images or len(images) >= worker.batch_size or worker.max_wait_ms <= 0:
            return images
        deadline = time.monotonic() + worker.max_wait_ms / 1000.0
        while len(images) < worker.batch_size and not self._stop_requested.is_set():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            self.wait_for_work(remaining)
            images += self._claim_some(worker.batch_size - len(images), self._clock())
        return images

    def _claim_some(self, limit: int, now: datetime) -> list[Image]:
        with self._sessions.begin() as session:
            return storage.claim_batch(session, self.owner, limit, self.settings.worker.lease_seconds, now)

    def _process(self, images: Sequence[Image]) -> None:
        ids = [image.id for image in images]
        by_id = {image.id: image for image in images}
        self._leases.track(ids)
        self._set_busy(len(images))
        if self._metrics is not None:
            self._metrics.batch_fill.observe(len(images) / max(1, self.settings.worker.batch_size))
            self._metrics.worker_busy.set(1)
        recorded: set[int] = set()
        tasks_by_id: dict[int, Task] = {}

        def report(outcome: Outcome, engine: EngineInfo | None = None) -> None:
            if outcome.image_id in recorded:
                return
            recorded.add(outcome.image_id)
            self._committer.submit(Pending(outcome, by_id[outcome.image_id], tasks_by_id.get(outcome.image_id), engine))

        try:
            tasks, early = self._planner.plan(images, self._clock())
            tasks_by_id.update((task.image_id, task) for task in tasks)
            for outcome in early:
                report(outcome)
            for key, group in _by_engine(tasks, self._engines).items():
                self._run_group(key, group, report)
        except Exception as error:  # planning failed (database busy?): give the batch a retry, never lose it
            log.exception("batch of %d image(s) failed before processing", len(images))
            for image_id in ids:
                report(Outcome(image_id, OutcomeKind.RETRY, f"internal error: {error}"))
        finally:
            for image_id in ids:
                if image_id not in recorded:  # only reachable through a bug: hand it back rather than hold it
                    report(Outcome(image_id, OutcomeKind.RELEASED))
            self._set_busy(0)
            if self._metrics is not None:
                self._metrics.worker_busy.set(0)
                splits = self._splits()
                self._metrics.oom_splits.inc(max(0, splits - self._last_splits))
                self._last_splits = splits

    def _run_group(self, key: EngineKey | None, tasks: list[Task], report: Callable[..., None]) -> None:
        try:
            engine = self._engines.get(*key) if key is not None else self._engines.default
        except ModelUnavailable as error:
            for task in tasks:
                report(Outcome(task.image_id, OutcomeKind.FAILED, str(error)))
            return
        info = EngineInfo(device=str(engine.device), model_version=model_version(engine))
        assert self._pool is not None
        runner = BatchRunner(
            self._pool,
            analyse=self._analyse,
            max_pixels=int(self.settings.worker.max_megapixels * 1_000_000),
            should_abort=self._should_abort,
        )
        runner.run(tasks, engine, lambda outcome: report(outcome, info))

    def _should_abort(self) -> bool:
        return self._abort_at is not None and self._stop_requested.is_set() and time.monotonic() >= self._abort_at

    def _set_busy(self, count: int) -> None:
        with self._state_lock:
            self._busy = count
            if count:
                self._last_batch_at = self._clock()

    def _splits(self) -> int:
        return sum(engine.stats().splits for engine in self._engines.all())

    def _settle_if_due(self) -> None:
        """Retry originals that could not be archived or deleted right after their commit."""
        if self._recorder.originals_behind and self._settle_at is None:
            self._settle_at = time.monotonic() + ORIGINALS_RETRY_SECONDS
            self._recorder.originals_behind = False
        if self._settle_at is not None and time.monotonic() >= self._settle_at:
            self._settle_at = None
            recovery = Recovery(self.settings, self._sessions, self.owner, self._clock, self._originals)
            recovery.settle_originals()


def _by_engine(tasks: Sequence[Task], engines: Engines) -> dict[EngineKey | None, list[Task]]:
    """Tasks per engine (:meth:`Engines.key`; None: the configured one), in claim order."""
    groups: dict[EngineKey | None, list[Task]] = {}
    for task in tasks:
        groups.setdefault(engines.key(task.model, task.ensemble), []).append(task)
    return groups
