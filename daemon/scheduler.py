"""Timed jobs of the daemon: the nightly retention run, the trash purge, and interval jobs the service adds.

The scheduler belongs to the service, never to the Flask app (an app may be built many times, e.g. in tests, and must
not start threads). APScheduler 3's BackgroundScheduler runs one thread plus a small pool; every job is
``coalesce=True`` (a run missed while the machine slept happens once, not N times), ``max_instances=1`` (a slow
retention run is never overlapped by the next) and has a misfire grace time (a run missed by a short outage still
happens; one missed by days does not fire late at a surprising hour).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from datetime import tzinfo
from typing import TYPE_CHECKING, Any

from config import Settings

if TYPE_CHECKING:
    from daemon.retention import RetentionRunner

log = logging.getLogger(__name__)

RETENTION_JOB = "retention"
PURGE_JOB = "trash-purge"

RETENTION_MISFIRE_GRACE_SECONDS = 3600
"""A nightly run missed by up to an hour (daemon restarting, machine waking) still runs; later, it waits a day."""

PURGE_INTERVAL_SECONDS = 3600.0
"""How often files older than ``trash_days`` are purged from the trash (independent of the retention schedule)."""

INTERVAL_MISFIRE_GRACE_SECONDS = 30
"""Interval jobs (lease requeue, ...) that are late by more than this skip to their next slot."""

EXECUTOR_THREADS = 4
"""Jobs are short and few; each job id never runs twice at once (``max_instances=1``)."""


class Scheduler:
    """Owns an APScheduler ``BackgroundScheduler``; ``start()`` / ``shutdown(wait=True)`` joins its threads."""

    def __init__(
        self,
        settings: Settings,
        retention: RetentionRunner,
        jobs: Sequence[tuple[str, Callable[[], None], float]] = (),
        *,
        timezone: tzinfo | None = None,
    ) -> None:
        """``jobs``: extra ``(name, function, interval_seconds)``; ``timezone`` of the cron schedule (default: the
        machine's local zone, which is what "nightly at 03:00" means to an admin)."""
        for name, _function, interval in jobs:
            if interval <= 0:
                raise ValueError(f"job {name!r}: interval must be positive, got {interval}")
        self._settings = settings
        self._retention = retention
        self._jobs = tuple(jobs)
        self._timezone = timezone
        self._scheduler: Any = None

    def start(self) -> None:
        from apscheduler.executors.pool import ThreadPoolExecutor
        from apscheduler.schedulers.background import BackgroundScheduler
        from apscheduler.triggers.cron import CronTrigger
        from apscheduler.triggers.interval import IntervalTrigger

        if self._scheduler is not None:
            raise RuntimeError("Scheduler already started")
        options: dict[str, Any] = {"executors": {"default": ThreadPoolExecutor(EXECUTOR_THREADS)}}
        if self._timezone is not None:
            options["timezone"] = self._timezone
        scheduler = BackgroundScheduler(job_defaults={"coalesce": True, "max_instances": 1}, daemon=False, **options)
        trigger = CronTrigger.from_crontab(self._settings.retention.schedule, timezone=scheduler.timezone)
        scheduler.add_job(
            _logged(RETENTION_JOB, self._run_retention),
            trigger,
            id=RETENTION_JOB,
            name=RETENTION_JOB,
            misfire_grace_time=RETENTION_MISFIRE_GRACE_SECONDS,
        )
        scheduler.add_job(
            _logged(PURGE_JOB, self._retention.purge_trash),
            IntervalTrigger(seconds=PURGE_INTERVAL_SECONDS),
            id=PURGE_JOB,
            name=PURGE_JOB,
            misfire_grace_time=INTERVAL_MISFIRE_GRACE_SECONDS,
        )
        for name, function, interval in self._jobs:
            scheduler.add_job(
                _logged(name, function),
                IntervalTrigger(seconds=interval),
                id=name,
                name=name,
                misfire_grace_time=INTERVAL_MISFIRE_GRACE_SECONDS,
            )
        scheduler.start()
        self._scheduler = scheduler
        log.info("scheduler started: retention %r, %d extra job(s)", self._settings.retention.schedule, len(self._jobs))

    def shutdown(self, wait: bool = True) -> None:
        """Stop firing jobs; with ``wait`` also wait for running jobs and join the scheduler's threads. Idempotent."""
        scheduler, self._scheduler = self._scheduler, None
        if scheduler is not None:
            scheduler.shutdown(wait=wait)
            log.info("scheduler stopped")

    @property
    def running(self) -> bool:
        return self._scheduler is not None and bool(self._scheduler.running)

    def next_runs(self) -> dict[str, str | None]:
        """Job id → next fire time (ISO 8601), for status pages and tests."""
        if self._scheduler is None:
            return {}
        return {
            job.id: job.next_run_time.isoformat() if job.next_run_time is not None else None
            for job in self._scheduler.get_jobs()
        }

    def _run_retention(self) -> None:
        from daemon.retention import RetentionBusy

        try:
            report = self._retention.run(dry_run=False)
        except RetentionBusy:  # an admin started one through the API a moment ago: that run does the work
            log.info("scheduled retention run skipped: another run is in progress")
            return
        log.info("scheduled retention run: %s", report.summary())


def _logged(name: str, function: Callable[[], Any]) -> Callable[[], None]:
    """Log a failing job with its name once, and keep the scheduler alive for the next run."""

    def job() -> None:
        try:
            function()
        except Exception:
            log.exception("scheduled job %s failed", name)

    job.__name__ = f"job_{name}"
    return job
