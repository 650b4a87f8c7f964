"""Read side: filters, cursor pagination, counts and status, the events trail, runtime switches, retention queries."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy.orm import Session, sessionmaker

import storage
from storage import EventKind, ImageFilter, ImageState, RetentionTarget, ScorePhase
from storage.pages import decode_cursor, encode_cursor

AddImages = Callable[..., list[int]]


def _ids(page: storage.Page[storage.Image]) -> list[int]:
    return [image.id for image in page.items]


def _all_pages(sessions: sessionmaker[Session], filters: ImageFilter, limit: int, newest_first: bool = False) -> list:
    ids, cursor = [], None
    while True:
        with sessions.begin() as session:
            page = storage.list_images(session, filters, limit=limit, cursor=cursor, newest_first=newest_first)
        ids += _ids(page)
        if page.next_cursor is None:
            return ids
        cursor = page.next_cursor


def _finish(session: Session, image_id: int, now: datetime, before: dict, after: dict | None = None) -> None:
    """Move one image through claim and done (the images before it are already done)."""
    [claimed] = storage.claim_batch(session, "w", 1, 60, now)
    assert claimed.id == image_id
    storage.mark_done(
        session, image_id, owner="w", output_path=f"/out/{image_id}.png", before=before, after=after, now=now
    )


@pytest.fixture
def scored(sessions: sessionmaker[Session], add_images: AddImages, now: datetime) -> list[int]:
    """Four done images with known scores in two inboxes, finished one day apart, plus one queued image."""
    ids = add_images(2, inbox="a", prefix="a") + add_images(2, inbox="b", prefix="b")
    noise = [2.0, 10.0, 20.0, 30.0]
    for day, (image_id, sigma) in enumerate(zip(ids, noise, strict=True)):
        with sessions.begin() as session:
            before = {"noise_sigma": sigma, "quality": 100 - sigma}
            _finish(session, image_id, now + timedelta(days=day), before, after={"noise_sigma": 1.0, "quality": 90.0})
    return [*ids, *add_images(1, inbox="a", prefix="q")]


# --- filters ------------------------------------------------------------------------------------------------------


def test_filter_by_state_and_inbox(sessions: sessionmaker[Session], scored: list[int]) -> None:
    with sessions.begin() as session:
        assert _ids(storage.list_images(session, ImageFilter(states=[ImageState.QUEUED]))) == [scored[4]]
        assert _ids(storage.list_images(session, ImageFilter(inbox="b"))) == scored[2:4]
        both = ImageFilter(states=[ImageState.DONE], inbox="a")
        assert _ids(storage.list_images(session, both)) == scored[:2]
        assert storage.count_images(session, both) == 2
        assert storage.count_images(session, ImageFilter()) == 5


def test_score_ranges_apply_to_the_before_phase_by_default(sessions: sessionmaker[Session], scored: list[int]) -> None:
    with sessions.begin() as session:
        noisy = ImageFilter(min_scores={"noise_sigma": 10.0})
        assert _ids(storage.list_images(session, noisy)) == scored[1:4]
        band = ImageFilter(min_scores={"noise_sigma": 5.0}, max_scores={"quality": 85.0})
        assert _ids(storage.list_images(session, band)) == scored[2:4]
        after = ImageFilter(phase=ScorePhase.AFTER, max_scores={"noise_sigma": 1.0})
        assert _ids(storage.list_images(session, after)) == scored[:4]  # the queued image has no scores


def test_date_ranges(sessions: sessionmaker[Session], scored: list[int], now: datetime) -> None:
    with sessions.begin() as session:
        window = ImageFilter(finished_from=now + timedelta(days=1), finished_to=now + timedelta(days=3))
        assert _ids(storage.list_images(session, window)) == scored[1:3]
        assert _ids(storage.list_images(session, ImageFilter(created_to=now))) == []


def test_invalid_queries_are_refused(sessions: sessionmaker[Session], scored: list[int]) -> None:
    with sessions.begin() as session:
        with pytest.raises(storage.InvalidQuery, match="unknown score 'sharpness'"):
            storage.list_images(session, ImageFilter(min_scores={"sharpness": 1}))
        for limit in (0, -1, storage.MAX_PAGE_SIZE + 1):
            with pytest.raises(storage.InvalidQuery, match="limit"):
                storage.list_images(session, limit=limit)
        for cursor in ("garbage!", "", encode_cursor("events", 3, descending=False)):
            with pytest.raises(storage.InvalidQuery):
                storage.list_images(session, cursor=cursor)
        ascending = storage.list_images(session, limit=1).next_cursor
        with pytest.raises(storage.InvalidQuery, match="ordering"):
            storage.list_images(session, cursor=ascending, newest_first=True)


# --- pagination ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("limit", [1, 2, 3, 50])
def test_pages_cover_every_row_once_in_order(
    sessions: sessionmaker[Session], add_images: AddImages, limit: int
) -> None:
    ids = add_images(7)
    assert _all_pages(sessions, ImageFilter(), limit) == ids
    assert _all_pages(sessions, ImageFilter(), limit, newest_first=True) == ids[::-1]


def test_pages_are_stable_while_rows_are_added_and_change_state(
    sessions: sessionmaker[Session], add_images: AddImages, now: datetime
) -> None:
    ids = add_images(6)
    with sessions.begin() as session:
        first = storage.list_images(session, limit=3)
    with sessions.begin() as session:
        storage.claim_batch(session, "w", 2, 60, now)  # rows of both pages change state
    new = add_images(2, prefix="new")
    with sessions.begin() as session:
        second = storage.list_images(session, limit=100, cursor=first.next_cursor)
    assert _ids(first) + _ids(second) == ids + new


@given(st.integers(min_value=1, max_value=2**62), st.booleans())
def test_cursor_round_trip(last_id: int, descending: bool) -> None:
    assert decode_cursor(encode_cursor("images", last_id, descending=descending), "images", descending=descending) == (
        last_id
    )


# --- counts, status, events ---------------------------------------------------------------------------------------


def test_count_by_state_lists_every_state(sessions: sessionmaker[Session], scored: list[int]) -> None:
    with sessions.begin() as session:
        counts = storage.count_by_state(session)
        assert set(counts) == set(ImageState)
        assert (counts[ImageState.DONE], counts[ImageState.QUEUED], counts[ImageState.FAILED]) == (4, 1, 0)
        assert storage.count_by_state(session, inbox="b")[ImageState.DONE] == 2


def test_status_numbers(sessions: sessionmaker[Session], scored: list[int], now: datetime) -> None:
    with sessions.begin() as session:
        status = storage.status_numbers(session, now=now + timedelta(days=3, seconds=60), window_seconds=120)
    assert (status.processed_total, status.failed_total, status.processed_in_window) == (4, 0, 1)
    assert status.images_per_minute == pytest.approx(0.5)
    assert status.oldest_queued_at == now


def test_events_filter_and_paginate(sessions: sessionmaker[Session], add_images: AddImages, now: datetime) -> None:
    ids = add_images(3)
    with sessions.begin() as session:
        storage.claim_batch(session, "w", 1, 60, now + timedelta(seconds=5))
    with sessions.begin() as session:
        assert [e.kind for e in storage.list_events(session, image_id=ids[0]).items] == [
            EventKind.DISCOVERED,
            EventKind.QUEUED,
            EventKind.STARTED,
        ]
        started = storage.list_events(session, kinds=[EventKind.STARTED]).items
        assert [(e.image_id, e.detail) for e in started] == [(ids[0], {"owner": "w"})]
        assert len(storage.list_events(session, since=now + timedelta(seconds=1)).items) == 1
        assert len(storage.list_events(session, until=now + timedelta(seconds=1)).items) == 6
        page = storage.list_events(session, limit=4)
        rest = storage.list_events(session, limit=4, cursor=page.next_cursor)
        assert [e.id for e in page.items + rest.items] == sorted(e.id for e in storage.list_events(session).items)
        assert rest.next_cursor is None


# --- runtime switches ---------------------------------------------------------------------------------------------


def test_paused_flag_persists_and_writes_events_on_change(sessions: sessionmaker[Session], now: datetime) -> None:
    with sessions.begin() as session:
        assert storage.is_paused(session) is False
        assert storage.set_paused(session, True, now=now, by="api") is True
        assert storage.set_paused(session, True, now=now) is False
    with sessions.begin() as session:
        assert storage.is_paused(session) is True
        assert storage.set_paused(session, False, now=now) is True
    with sessions.begin() as session:
        assert storage.is_paused(session) is False
        kinds = [(e.kind, e.detail) for e in storage.list_events(session).items]
    assert kinds == [(EventKind.PAUSED, {"by": "api"}), (EventKind.RESUMED, None)]


def test_retention_overrides_round_trip(sessions: sessionmaker[Session], now: datetime) -> None:
    with sessions.begin() as session:
        assert storage.get_retention_overrides(session) == {}
        storage.set_retention_overrides(session, {"inbox": {"outputs_days": 3}}, now=now)
    with sessions.begin() as session:
        storage.set_retention_overrides(session, {"inbox": {"outputs_days": 5, "failed_days": None}}, now=now)
    with sessions.begin() as session:
        assert storage.get_retention_overrides(session) == {"inbox": {"outputs_days": 5, "failed_days": None}}


# --- retention ----------------------------------------------------------------------------------------------------


def test_retention_candidates_are_per_inbox_oldest_first(
    sessions: sessionmaker[Session], scored: list[int], now: datetime
) -> None:
    with sessions.begin() as session:
        outputs = storage.retention_candidates(session, RetentionTarget.OUTPUTS, inbox="b", older_than=None)
        assert [i.id for i in outputs] == scored[2:4]
        cutoff = now + timedelta(days=3)  # b's images finished on days 2 and 3: only day 2 is older
        old = storage.retention_candidates(session, RetentionTarget.OUTPUTS, inbox="b", older_than=cutoff)
        assert [i.id for i in old] == [scored[2]]
        storage.mark_deleted(session, scored[2], now=cutoff)
        assert storage.retention_candidates(session, RetentionTarget.OUTPUTS, inbox="b", older_than=cutoff) == []
        originals = storage.retention_candidates(session, RetentionTarget.ORIGINALS, inbox="b", older_than=cutoff)
        assert [i.id for i in originals] == [scored[2]]  # output gone, original still there
        storage.mark_original_deleted(session, scored[2], now=cutoff)
        assert storage.retention_candidates(session, RetentionTarget.ORIGINALS, inbox="b", older_than=cutoff) == []


def test_retention_of_failed_files_and_output_bytes(
    sessions: sessionmaker[Session], add_images: AddImages, now: datetime
) -> None:
    ok, bad = add_images(2)
    with sessions.begin() as session:
        storage.claim_batch(session, "w", 2, 60, now)
        storage.mark_done(session, ok, owner="w", output_path="/o/1.png", output_size=300, now=now)
        storage.mark_failed(session, bad, "undecodable", owner="w", now=now)
    later = now + timedelta(days=1)
    with sessions.begin() as session:
        failed = storage.retention_candidates(session, RetentionTarget.FAILED, inbox="inbox", older_than=later)
        assert [i.id for i in failed] == [bad]
        assert storage.output_bytes(session, inbox="inbox") == 300
        storage.mark_deleted(session, bad, original_deleted=True, now=later)
        assert storage.retention_candidates(session, RetentionTarget.FAILED, inbox="inbox", older_than=later) == []
        assert (
            storage.retention_candidates(session, RetentionTarget.ORIGINALS, inbox="inbox", older_than=later)[0].id
            == ok
        )
