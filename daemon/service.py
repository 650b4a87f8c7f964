"""The composition root of ``enhancerd run``: builds every part from the settings and runs them until a signal.

Start order: storage (migrations), the model and engine, metrics, the API, the worker, the watchers, the scheduler;
then READY=1. Stop order is the reverse of what feeds what: intake (watchers) first, then the worker finishes or
hands back its batch, then the scheduler and the API; every thread is joined. Signal handlers only set an Event
(:mod:`daemon.signals`); the main thread does all of this in :meth:`Service.run_until_stopped`.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any

import sqlalchemy

import storage
from config import Settings, ensure_folders
from core.imageio import sniff_format
from core.model_loader import ModelLoadError
from daemon.api.app import create_app
from daemon.api.context import ApiContext
from daemon.api.server import ApiServer
from daemon.feed import InboxFeed, WakingIntake, WatcherMetrics, watched_inboxes, watcher_options
from daemon.heap import freeze_startup_heap, thaw_heap
from daemon.metrics import Metrics
from daemon.notify import SystemdNotifier
from daemon.retention import RetentionRunner
from daemon.scheduler import Scheduler
from daemon.signals import StopSignals
from daemon.status import LiveStatus, status_line
from daemon.watch import InboxWatcher, WatcherThread
from daemon.worker import (
    Engines,
    Worker,
    WorkerThread,
    load_engine,
    model_version,
    requeue_expired,
    resolve_analyse,
)

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine as Database

log = logging.getLogger(__name__)

FINISH_TIMEOUT_SECONDS = 60.0
"""On stop, the batch in flight may finish for this long; the rest goes back to the queue (systemd's
TimeoutStopSec, 180 s, leaves room for the other parts to stop after it)."""

LEASE_REQUEUE_SECONDS = 30.0
"""Interval of the job returning images of dead workers (expired leases) to the queue."""

STATUS_SECONDS = 10.0
"""Interval of systemd STATUS= updates with the queue depth."""

TICK_SECONDS = 1.0
"""The main loop's wake-up interval (watchdog pings go out at half of WATCHDOG_USEC, or at this pace if faster)."""

WATCHER_LOOP_SECONDS = 0.25
"""Pause between two watcher iterations; it adds to the latency of every file."""


class ServiceError(Exception):
    """The daemon cannot start; the message says why in one line (exit status ``code``)."""

    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.code = code


class Service:
    """``start()``, then ``run_until_stopped()`` (main thread, handles signals), or ``stop()`` from elsewhere."""

    def __init__(
        self,
        settings: Settings,
        *,
        notifier: SystemdNotifier | None = None,
        clock: Callable[[], datetime] = storage.utcnow,
        finish_timeout: float = FINISH_TIMEOUT_SECONDS,
    ) -> None:
        self.settings = settings
        self._notifier = notifier if notifier is not None else SystemdNotifier()
        self._clock = clock
        self._finish_timeout = finish_timeout
        self._stop = threading.Event()
        self._stopped = False
        self._lock = threading.Lock()
        self.status = LiveStatus(clock())
        self.metrics: Metrics | None = None
        self.database: Database | None = None
        self.sessions: Any = None
        self._read_sessions: Any = None
        self._watcher_metrics: WatcherMetrics | None = None
        self.api: ApiServer | None = None
        self.worker: Worker | None = None
        self.worker_thread: WorkerThread | None = None
        self.watcher_thread: WatcherThread | None = None
        self.scheduler: Scheduler | None = None
        self._heap_frozen = False

    # --- start ----------------------------------------------------------------------------------------------------

    def start(self) -> None:
        """Start every part in order; on failure, stop what was started and raise :class:`ServiceError`."""
        for warning in self.settings.warnings:
            log.warning("config: %s", warning)
        try:
            self._start()
        except BaseException as error:
            self.stop()
            if isinstance(error, ServiceError | KeyboardInterrupt):
                raise
            raise ServiceError(f"cannot start: {error}") from error

    def _start(self) -> None:
        settings = self.settings
        ensure_folders(settings)
        self.database = storage.create_engine(settings.database_url)
        storage.migrate(self.database)
        storage.analyze(self.database)
        self.sessions = storage.session_factory(self.database)
        self._read_sessions = read_sessions = storage.session_factory(self.database, readonly=True)
        log.info("storage ready: %s", _safe_url(settings.database_url))

        engines = self._load_engines()
        analyse, analyser = resolve_analyse()
        default = engines.default
        version = model_version(default)
        log.info("model %s loaded on %s (%s)", version, default.device, default.autocast_name)

        def queue_counts() -> dict[str, int]:
            with read_sessions() as session:
                return {state.value: n for state, n in storage.count_by_state(session).items()}

        self.metrics = metrics = Metrics(queue_counts=queue_counts)
        metrics.model_info.info({"model": version, "device": str(default.device), "precision": default.autocast_name})

        self.worker = worker = Worker(
            settings,
            self.sessions,
            engines,
            analyse=analyse,
            analyser_name=analyser,
            metrics=metrics,
            clock=self._clock,
        )
        self.status.worker = worker
        intake = WakingIntake(
            settings,
            self.sessions,
            version,
            clock=self._clock,
            read_sessions=read_sessions,
            on_queued=worker.wake,
            on_duplicate=metrics.duplicates.inc,
        )
        retention = RetentionRunner(settings, self.sessions, metrics, self._clock)

        context = ApiContext(
            settings=settings,
            sessions=self.sessions,
            metrics=metrics,
            intake=intake,
            status=self.status,
            retention=retention,
            clock=self._clock,
            read_sessions=read_sessions,
            analyse=analyse,
        )
        self.api = ApiServer(create_app(context), settings.api.host, settings.api.port, token=settings.api.token)
        self._heap_frozen = freeze_startup_heap() > 0  # the model and the app are loaded; no thread runs yet
        self.api.start()

        self.worker_thread = WorkerThread(worker)
        self.status.worker_thread = self.worker_thread
        self.worker_thread.start()
        report = worker.recovery
        if report is not None and report.failed:  # out of attempts at start-up: they crashed a worker every time
            metrics.failed.labels(kind="crashed").inc(len(report.failed))
        if report is not None and (report.requeued or report.failed or report.temp_files or report.originals_settled):
            log.info(
                "recovered after an unclean stop: %d requeued, %d failed, %d temporary file(s) removed, "
                "%d original(s) settled",
                len(report.requeued),
                len(report.failed),
                len(report.temp_files),
                report.originals_settled,
            )

        feed = InboxFeed(intake)
        watcher = InboxWatcher(
            watched_inboxes(settings),
            options=watcher_options(settings),
            sniff=sniff_format,
            known=feed.known,
            on_rejected=feed.on_rejected,
        )
        self.status.watcher = watcher
        self._watcher_metrics = WatcherMetrics(metrics)
        self.watcher_thread = WatcherThread(watcher, feed.on_ready, interval=WATCHER_LOOP_SECONDS)
        self.status.watcher_thread = self.watcher_thread
        self.watcher_thread.start()
        for health in watcher.health():
            log.info("watching %s (%s) as inbox %r", health.root, health.mode or "starting", health.name)

        sessions, max_attempts = self.sessions, settings.worker.max_attempts

        def requeue_leases() -> None:
            requeue_expired(sessions, max_attempts, self._clock(), metrics=metrics)

        self.scheduler = Scheduler(
            settings,
            retention,
            jobs=[
                ("lease-requeue", requeue_leases, LEASE_REQUEUE_SECONDS),
                ("status", self._notify_status, STATUS_SECONDS),
            ],
        )
        self.scheduler.start()
        self.status.state = "running"
        self._notifier.ready(status=self._status_text())
        log.info("enhancerd ready: API on http://%s:%d", settings.api.host, self.api.port)

    def _load_engines(self) -> Engines:
        worker = self.settings.worker
        try:
            default = load_engine(worker.model, worker)
        except (ModelLoadError, ValueError) as error:  # a wrong path or device is a configuration problem
            raise ServiceError(f"[worker] model/device: {error}", code=2) from error
        return Engines(
            default, default_model=worker.model, loader=lambda model, views: load_engine(model, worker, views)
        )

    # --- run and stop ---------------------------------------------------------------------------------------------

    def run_until_stopped(self) -> int:
        """Serve until SIGTERM/SIGINT (or :meth:`stop`); then stop everything. Returns the exit status."""
        code = 0
        watchdog = self._notifier.watchdog_seconds
        tick = min(TICK_SECONDS, watchdog / 2) if watchdog else TICK_SECONDS
        with StopSignals(self._stop) as signals:
            while not self._stop.wait(tick):
                if self._threads_alive():
                    self._notifier.watchdog()
                elif not self._stop.is_set():
                    log.error("a worker or watcher thread died; stopping so the service manager can restart us")
                    code = 1
                    break
            if signals.received is not None:
                log.info("received %s; stopping", signal.Signals(signals.received).name)
            self.stop()
        return code

    def request_stop(self) -> None:
        """Make :meth:`run_until_stopped` return (thread-safe, e.g. from tests)."""
        self._stop.set()

    def stop(self) -> None:
        """Stop intake, finish or hand back the batch in flight, stop the scheduler and the API; join every thread."""
        with self._lock:
            if self._stopped:
                return
            self._stopped = True
        self._stop.set()
        self.status.state = "stopping"
        self._notifier.stopping(status="stopping: finishing the batch in flight")
        started = time.monotonic()
        steps: list[tuple[str, Callable[[], object]]] = []
        if self.watcher_thread is not None:
            steps.append(("watchers", self.watcher_thread.stop))
        if self.worker_thread is not None:
            steps.append(("worker", lambda: self.worker_thread.stop(self._finish_timeout)))  # type: ignore[union-attr]
        elif self.worker is not None:
            steps.append(("worker", self.worker.shutdown))
        if self.scheduler is not None:
            steps.append(("scheduler", self.scheduler.shutdown))
        if self.api is not None:
            steps.append(("API", self.api.stop))
        if self.database is not None:
            steps.append(("database", self.database.dispose))
        for name, step in steps:
            try:
                step()
            except Exception:
                log.exception("stopping the %s failed", name)
        if self._heap_frozen:
            thaw_heap()
        self.status.state = "stopped"
        log.info("enhancerd stopped in %.1f s", time.monotonic() - started)

    # --- health -----------------------------------------------------------------------------------------------------

    def _threads_alive(self) -> bool:
        """Watcher and worker threads (and the worker's lease renewal) run: the condition for WATCHDOG=1."""
        watcher = self.watcher_thread is not None and self.watcher_thread.is_alive()
        worker = self.worker_thread is not None and self.worker_thread.is_alive()
        leases = self.worker is not None and self.worker.threads_alive()
        return watcher and worker and leases

    def _status_text(self) -> str:
        if self._read_sessions is None:
            return self.status.state
        with self._read_sessions() as session:
            return status_line(storage.count_by_state(session))

    def _notify_status(self) -> None:
        """The scheduler's periodic job: STATUS= with the queue depth, and the watchers' counters as metrics."""
        self._notifier.status(self._status_text())
        if self.status.watcher is not None and self._watcher_metrics is not None:
            self._watcher_metrics.update(self.status.watcher.health())


def _safe_url(url: str) -> str:
    """The database URL without its password, for logs."""
    return sqlalchemy.make_url(url).render_as_string(hide_password=True)
