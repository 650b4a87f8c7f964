"""Scheduler: the retention cron job, the trash purge, extra interval jobs; start and shutdown join threads."""

from __future__ import annotations

import threading
from datetime import UTC, datetime

import pytest

from daemon.scheduler import PURGE_JOB, RETENTION_JOB, Scheduler


def _aps_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith(("APScheduler", "ThreadPoolExecutor"))]


def test_jobs_run_and_shutdown_joins(settings, context, caplog) -> None:
    ticked = threading.Event()
    calls = {"boom": 0}

    def boom() -> None:
        calls["boom"] += 1
        raise RuntimeError("job failed")

    scheduler = Scheduler(
        settings, context.retention, jobs=[("tick", ticked.set, 0.05), ("boom", boom, 0.05)], timezone=UTC
    )
    scheduler.start()
    try:
        assert scheduler.running
        assert ticked.wait(5)
        runs = scheduler.next_runs()
        assert set(runs) == {RETENTION_JOB, PURGE_JOB, "tick", "boom"}
        next_retention = datetime.fromisoformat(runs[RETENTION_JOB])
        assert (next_retention.hour, next_retention.minute) == (3, 0)  # "0 3 * * *" in the given zone
    finally:
        scheduler.shutdown(wait=True)
    assert not scheduler.running
    assert _aps_threads() == []
    scheduler.shutdown()  # idempotent


@pytest.mark.parametrize("settings_overrides", [{"retention.schedule": "*/5 * * * *"}])
def test_the_schedule_comes_from_settings(settings, context) -> None:
    scheduler = Scheduler(settings, context.retention, timezone=UTC)
    scheduler.start()
    try:
        next_run = datetime.fromisoformat(scheduler.next_runs()[RETENTION_JOB])
        assert next_run.minute % 5 == 0 and next_run.second == 0
        job = scheduler._scheduler.get_job(RETENTION_JOB)
        assert job.coalesce and job.max_instances == 1 and job.misfire_grace_time >= 60
    finally:
        scheduler.shutdown()


def test_the_retention_job_runs_a_real_run(settings, context, monkeypatch) -> None:
    calls = []
    real = context.retention.run
    monkeypatch.setattr(context.retention, "run", lambda dry_run: calls.append(dry_run) or real(dry_run=dry_run))
    Scheduler(settings, context.retention)._run_retention()
    assert calls == [False]


def test_bad_intervals_are_refused(settings, context) -> None:
    with pytest.raises(ValueError):
        Scheduler(settings, context.retention, jobs=[("x", lambda: None, 0)])
