"""The durable queue: claims with leases, concurrency, lease expiry, retries, and the guarded state transitions."""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

import storage
from storage import EventKind, ImageState, ScorePhase

AddImages = Callable[..., list[int]]


def _state(sessions: sessionmaker[Session], image_id: int) -> ImageState:
    with sessions.begin() as session:
        return storage.get_image(session, image_id).state


def _kinds(sessions: sessionmaker[Session], image_id: int) -> list[EventKind]:
    with sessions.begin() as session:
        return [event.kind for event in storage.list_events(session, image_id=image_id).items]


def _claim(sessions: sessionmaker[Session], owner: str, limit: int, now: datetime, lease: float = 60) -> list[int]:
    with sessions.begin() as session:
        return [image.id for image in storage.claim_batch(session, owner, limit, lease, now)]


# --- claiming -----------------------------------------------------------------------------------------------------


def test_claim_takes_the_oldest_due_images_and_leases_them(
    sessions: sessionmaker[Session], add_images: AddImages, now: datetime
) -> None:
    ids = add_images(5)
    with sessions.begin() as session:
        batch = storage.claim_batch(session, "worker-1", 3, 60, now)
        assert [image.id for image in batch] == ids[:3]
        for image in batch:
            assert image.state is ImageState.PROCESSING
            assert image.lease_owner == "worker-1"
            assert image.lease_expires_at == now + timedelta(seconds=60)
            assert (image.attempts, image.started_at) == (1, now)
    assert _claim(sessions, "worker-2", 10, now) == ids[3:]
    assert _claim(sessions, "worker-2", 10, now) == []
    assert _kinds(sessions, ids[0]) == [EventKind.DISCOVERED, EventKind.QUEUED, EventKind.STARTED]


def test_claim_skips_images_not_yet_due(sessions: sessionmaker[Session], add_images: AddImages, now: datetime) -> None:
    [image_id] = add_images(1, at=now + timedelta(seconds=30))
    assert _claim(sessions, "w", 10, now) == []
    assert _claim(sessions, "w", 10, now + timedelta(seconds=30)) == [image_id]


def test_concurrent_claimers_never_get_the_same_image(
    db: Engine, sessions: sessionmaker[Session], add_images: AddImages, now: datetime
) -> None:
    ids = add_images(120)
    start = threading.Barrier(4)

    def claimer(owner: str) -> list[int]:
        start.wait()
        mine: list[int] = []
        while batch := _claim(sessions, owner, 7, now):
            mine += batch
        return mine

    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(claimer, [f"worker-{n}" for n in range(4)]))
    claimed = [image_id for result in results for image_id in result]
    assert sorted(claimed) == ids  # every image exactly once
    with sessions.begin() as session:
        assert storage.count_by_state(session)[ImageState.PROCESSING] == 120
        owners = session.scalars(sa.select(storage.Image.lease_owner).distinct()).all()
    assert len(owners) >= 1


@pytest.mark.postgres
def test_postgres_claimers_skip_rows_locked_by_an_open_claim(
    backend: str, sessions: sessionmaker[Session], add_images: AddImages, now: datetime
) -> None:
    """SKIP LOCKED: a second claimer neither waits for nor takes the rows of an uncommitted claim."""
    if backend != "postgresql":
        pytest.skip("SQLite serialises writers instead (BEGIN IMMEDIATE)")
    ids = add_images(6)
    with sessions.begin() as first:
        assert [i.id for i in storage.claim_batch(first, "a", 3, 60, now)] == ids[:3]
        with ThreadPoolExecutor(max_workers=1) as pool:  # another connection, while `first` is still open
            assert pool.submit(_claim, sessions, "b", 10, now).result(timeout=10) == ids[3:]


def test_renew_extends_only_the_owners_leases(
    sessions: sessionmaker[Session], add_images: AddImages, now: datetime
) -> None:
    ids = add_images(2)
    _claim(sessions, "a", 1, now)
    _claim(sessions, "b", 1, now)
    later = now + timedelta(seconds=50)
    with sessions.begin() as session:
        assert storage.renew_leases(session, "a", ids, 60, later) == [ids[0]]
    with sessions.begin() as session:
        assert storage.get_image(session, ids[0]).lease_expires_at == later + timedelta(seconds=60)
        assert storage.get_image(session, ids[1]).lease_expires_at == now + timedelta(seconds=60)


# --- crash recovery and retries -----------------------------------------------------------------------------------


def test_expired_leases_return_to_the_queue(
    sessions: sessionmaker[Session], add_images: AddImages, now: datetime
) -> None:
    ids = add_images(2)
    _claim(sessions, "dead", 1, now, lease=10)
    _claim(sessions, "alive", 1, now, lease=100)
    after = now + timedelta(seconds=11)
    with sessions.begin() as session:
        requeued = storage.requeue_expired_leases(session, after, max_attempts=5)
        assert [(i.id, i.state, i.lease_owner) for i in requeued] == [(ids[0], ImageState.QUEUED, None)]
        assert requeued[0].next_attempt_at == after
    assert _state(sessions, ids[1]) is ImageState.PROCESSING
    assert _kinds(sessions, ids[0])[-1] is EventKind.LEASE_EXPIRED
    assert _claim(sessions, "new", 10, after) == [ids[0]]  # claimable again at once
    with sessions.begin() as session:
        assert storage.get_image(session, ids[0]).attempts == 2


def test_an_image_that_kills_every_worker_fails_after_max_attempts(
    sessions: sessionmaker[Session], add_images: AddImages, now: datetime
) -> None:
    [image_id] = add_images(1)
    t = now
    for _ in range(3):
        assert _claim(sessions, "w", 1, t, lease=10) == [image_id]
        t += timedelta(seconds=11)
        with sessions.begin() as session:
            [image] = storage.requeue_expired_leases(session, t, max_attempts=3)
    assert image.state is ImageState.FAILED
    assert "3 attempts" in image.error
    assert _claim(sessions, "w", 1, t) == []


def test_a_worker_that_lost_its_lease_cannot_finish(
    sessions: sessionmaker[Session], add_images: AddImages, now: datetime
) -> None:
    [image_id] = add_images(1)
    _claim(sessions, "slow", 1, now, lease=10)
    t = now + timedelta(seconds=11)
    with sessions.begin() as session:
        storage.requeue_expired_leases(session, t)
    _claim(sessions, "fast", 1, t)
    with pytest.raises(storage.StateConflict, match="lease owner is 'fast'"), sessions.begin() as session:
        storage.mark_done(session, image_id, owner="slow", output_path="/out/x.png", now=t)
    with sessions.begin() as session:
        storage.mark_done(session, image_id, owner="fast", output_path="/out/x.png", now=t)
        image = storage.get_image(session, image_id)
        assert (image.state, image.lease_owner) == (ImageState.DONE, None)


def test_retry_waits_for_its_backoff(sessions: sessionmaker[Session], add_images: AddImages, now: datetime) -> None:
    [image_id] = add_images(1)
    _claim(sessions, "w", 1, now)
    delay = storage.retry_delay(1, base_seconds=5, max_seconds=600)
    with sessions.begin() as session:
        image = storage.schedule_retry(
            session, image_id, "disk full", now + timedelta(seconds=delay), owner="w", now=now
        )
        assert (image.state, image.error, image.attempts, image.lease_owner) == (
            ImageState.QUEUED,
            "disk full",
            1,
            None,
        )
    assert _claim(sessions, "w", 1, now + timedelta(seconds=delay - 1)) == []
    assert _claim(sessions, "w", 1, now + timedelta(seconds=delay)) == [image_id]
    assert _kinds(sessions, image_id).count(EventKind.RETRIED) == 1


def test_retry_delay_doubles_up_to_the_maximum() -> None:
    assert [storage.retry_delay(n, 5, 60) for n in range(1, 7)] == [5, 10, 20, 40, 60, 60]


def test_release_on_shutdown_does_not_count_an_attempt(
    sessions: sessionmaker[Session], add_images: AddImages, now: datetime
) -> None:
    ids = add_images(2)
    _claim(sessions, "w", 2, now)
    with sessions.begin() as session:
        assert storage.release_claims(session, "w", ids, now) == ids
    with sessions.begin() as session:
        assert [(i.state, i.attempts) for i in map(lambda n: storage.get_image(session, n), ids)] == [
            (ImageState.QUEUED, 0)
        ] * 2


# --- transitions --------------------------------------------------------------------------------------------------


def test_mark_done_records_output_scores_and_measurements(
    sessions: sessionmaker[Session], add_images: AddImages, now: datetime
) -> None:
    [image_id] = add_images(1)
    _claim(sessions, "w", 1, now)
    before = {"path": "/in/a.jpg", "width": 640, "height": 480, "quality": 41.5, "jpeg_quality": None, "hist": [1, 2]}
    with sessions.begin() as session:
        storage.mark_done(
            session,
            image_id,
            owner="w",
            output_path="/out/a.png",
            output_size=1234,
            before=before,
            after={"width": 640, "height": 480, "quality": 77.0},
            timings={"engine": 0.5},
            device="cpu",
            model_version="v2",
            format="TIFF",
            notes=["multi-page TIFF: processed page 1 of 3"],
            now=now,
        )
    with sessions.begin() as session:
        image = storage.get_image(session, image_id)
        assert image.format == "TIFF"
        done = storage.list_events(session, image_id=image_id).items[-1]
        assert done.detail["notes"] == ["multi-page TIFF: processed page 1 of 3"]
        assert (image.state, image.output_path, image.output_size, image.finished_at) == (
            ImageState.DONE,
            "/out/a.png",
            1234,
            now,
        )
        assert (image.width, image.height, image.device, image.model_version) == (640, 480, "cpu", "v2")
        assert image.timings == {"engine": 0.5}
        assert image.score(ScorePhase.BEFORE).quality == 41.5
        assert image.score(ScorePhase.BEFORE).extra == {"hist": [1, 2]}
        assert image.score(ScorePhase.AFTER).as_dict()["quality"] == 77.0
    assert _kinds(sessions, image_id)[-1] is EventKind.DONE


def test_transitions_refuse_the_wrong_state(
    sessions: sessionmaker[Session], add_images: AddImages, now: datetime
) -> None:
    [image_id] = add_images(1)
    with pytest.raises(storage.StateConflict, match="is queued, expected processing"), sessions.begin() as session:
        storage.mark_done(session, image_id, output_path="/o", now=now)
    with pytest.raises(storage.StateConflict), sessions.begin() as session:
        storage.requeue_for_reprocess(session, image_id, now=now)
    with pytest.raises(storage.NotFound), sessions.begin() as session:
        storage.mark_failed(session, 12345, "x", now=now)
    assert _state(sessions, image_id) is ImageState.QUEUED


def test_permanent_failure_and_reprocess(sessions: sessionmaker[Session], add_images: AddImages, now: datetime) -> None:
    [image_id] = add_images(1)
    _claim(sessions, "w", 1, now)
    with sessions.begin() as session:
        failed = storage.mark_failed(session, image_id, "cannot decode", owner="w", now=now)
        assert (failed.state, failed.error, failed.finished_at) == (ImageState.FAILED, "cannot decode", now)
    later = now + timedelta(hours=1)
    with sessions.begin() as session:
        image = storage.requeue_for_reprocess(session, image_id, {"strength": 0.3, "model": "m2"}, now=later)
        assert (image.state, image.error, image.attempts, image.finished_at) == (ImageState.QUEUED, None, 0, None)
        assert image.parameters == {"strength": 0.3, "model": "m2"}
        assert image.parameters_key == storage.parameters_key({"model": "m2", "strength": 0.3})
    with sessions.begin() as session:
        [event] = storage.list_events(session, image_id=image_id, kinds=[EventKind.REPROCESSED]).items
        assert event.detail == {"previous_state": "failed", "parameters": {"strength": 0.3, "model": "m2"}}
    assert _claim(sessions, "w", 1, later) == [image_id]


def test_reprocess_of_a_duplicate_with_new_parameters_is_no_longer_a_duplicate(
    sessions: sessionmaker[Session], make_image, now: datetime
) -> None:
    with sessions.begin() as session:
        storage.intake(session, make_image("a", content="same"), now=now)
        dup = storage.intake(session, make_image("b", content="same"), now=now)
        image = storage.requeue_for_reprocess(session, dup.id, {"strength": 0.5}, now=now)
        assert (image.state, image.duplicate_of) == (ImageState.QUEUED, None)


def test_mark_duplicate_after_intake(sessions: sessionmaker[Session], add_images: AddImages, now: datetime) -> None:
    first, second = add_images(2)
    _claim(sessions, "w", 2, now)
    with sessions.begin() as session:
        image = storage.mark_duplicate(session, second, first, owner="w", now=now)
        assert (image.state, image.duplicate_of, image.lease_owner) == (ImageState.DUPLICATE, first, None)


def test_originals_and_deletion_are_recorded_and_deletion_is_idempotent(
    sessions: sessionmaker[Session], add_images: AddImages, now: datetime
) -> None:
    [image_id] = add_images(1)
    _claim(sessions, "w", 1, now)
    with sessions.begin() as session:
        storage.mark_done(session, image_id, owner="w", output_path="/out/a.png", now=now)
        storage.mark_original_moved(session, image_id, "/archive/a.jpg", now=now)
        assert storage.get_image(session, image_id).original_location == "/archive/a.jpg"
    with sessions.begin() as session:
        image = storage.mark_deleted(session, image_id, original_deleted=True, detail={"reason": "retention"}, now=now)
        assert (image.state, image.original_deleted_at, image.original_location) == (ImageState.DELETED, now, None)
    with sessions.begin() as session:
        storage.mark_deleted(session, image_id, now=now + timedelta(days=1))
    kinds = _kinds(sessions, image_id)
    assert kinds[-3:] == [EventKind.DONE, EventKind.ARCHIVED, EventKind.DELETED]
    assert kinds.count(EventKind.DELETED) == 1


def test_record_scores_replaces_a_phase(sessions: sessionmaker[Session], add_images: AddImages) -> None:
    [image_id] = add_images(1)
    with sessions.begin() as session:
        storage.record_scores(session, image_id, ScorePhase.AFTER, {"quality": 50.0, "extra_key": 1})
    with sessions.begin() as session:
        storage.record_scores(session, image_id, ScorePhase.AFTER, {"quality": 60.0})
    with sessions.begin() as session:
        score = storage.get_image(session, image_id).score(ScorePhase.AFTER)
        assert (score.quality, score.extra) == (60.0, None)
