"""Intake: queued rows with their events, duplicate detection, recognising known files."""

from __future__ import annotations

from datetime import datetime

from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy.orm import Session, sessionmaker

import storage
from storage import EventKind, ImageState


def _kinds(session: Session, image_id: int) -> list[EventKind]:
    return [event.kind for event in storage.list_events(session, image_id=image_id).items]


def test_intake_commits_a_queued_row_with_its_events(
    make_image, sessions: sessionmaker[Session], now: datetime
) -> None:
    with sessions.begin() as session:
        image_id = storage.intake(session, make_image("a", source_size=42, source_mtime_ns=7), now=now).id
    with sessions.begin() as session:
        image = storage.get_image(session, image_id)
        assert image.state is ImageState.QUEUED
        assert (image.source_path, image.relative_path, image.inbox) == ("/photos/inbox/a.jpg", "a.jpg", "inbox")
        assert (image.source_size, image.source_mtime_ns, image.attempts) == (42, 7, 0)
        assert image.next_attempt_at == now and image.created_at == now
        assert image.parameters == {"strength": 1.0}
        assert _kinds(session, image_id) == [EventKind.DISCOVERED, EventKind.QUEUED]


def test_same_content_model_and_parameters_is_a_duplicate_of_the_first(
    make_image, sessions: sessionmaker[Session], now: datetime
) -> None:
    with sessions.begin() as session:
        first = storage.intake(session, make_image("a", content="same"), now=now)
        second = storage.intake(session, make_image("b", content="same"), now=now)
        third = storage.intake(session, make_image("c", content="same"), now=now)
        assert second.state is ImageState.DUPLICATE and second.duplicate_of == first.id
        assert third.duplicate_of == first.id  # never a duplicate of a duplicate
        assert second.finished_at == now
        assert _kinds(session, second.id) == [EventKind.DISCOVERED, EventKind.DUPLICATE]


def test_other_parameters_or_model_are_not_duplicates(
    make_image, sessions: sessionmaker[Session], now: datetime
) -> None:
    with sessions.begin() as session:
        storage.intake(session, make_image("a", content="same"), now=now)
        other_strength = storage.intake(session, make_image("b", content="same", parameters={"strength": 0.5}), now=now)
        other_model = storage.intake(session, make_image("c", content="same", model_version="v2"), now=now)
        no_model = storage.intake(session, make_image("d", content="same", model_version=None), now=now)
        no_model_again = storage.intake(session, make_image("e", content="same", model_version=None), now=now)
    assert [other_strength.state, other_model.state, no_model.state] == [ImageState.QUEUED] * 3
    assert no_model_again.duplicate_of == no_model.id


def test_parameters_match_regardless_of_key_order_and_int_or_float(
    make_image, sessions: sessionmaker[Session], now: datetime
) -> None:
    with sessions.begin() as session:
        storage.intake(session, make_image("a", content="x", parameters={"strength": 1, "tile": 256}), now=now)
        dup = storage.intake(
            session, make_image("b", content="x", parameters={"tile": 256.0, "strength": 1.0}), now=now
        )
    assert dup.state is ImageState.DUPLICATE


def test_failed_or_deleted_images_are_not_duplicate_targets(
    make_image, sessions: sessionmaker[Session], now: datetime
) -> None:
    with sessions.begin() as session:
        first = storage.intake(session, make_image("a", content="same"), now=now)
        storage.mark_failed(session, first.id, "undecodable", now=now)
        second = storage.intake(session, make_image("b", content="same"), now=now)
        assert second.state is ImageState.QUEUED


def test_without_a_hash_nothing_is_a_duplicate(sessions: sessionmaker[Session], now: datetime) -> None:
    with sessions.begin() as session:
        images = [
            storage.intake(session, storage.NewImage("inbox", f"/p/{n}", n, content_hash=None), now=now) for n in "ab"
        ]
    assert [image.state for image in images] == [ImageState.QUEUED, ImageState.QUEUED]


def test_find_known_matches_path_size_and_mtime_in_any_state(
    make_image, sessions: sessionmaker[Session], now: datetime
) -> None:
    with sessions.begin() as session:
        image = storage.intake(session, make_image("a", source_size=10, source_mtime_ns=99), now=now)
        storage.mark_failed(session, image.id, "bad", now=now)
    with sessions.begin() as session:
        path = "/photos/inbox/a.jpg"
        assert storage.find_known(session, path, 10, 99).id == image.id
        assert storage.find_known(session, path, 10, 100) is None  # rewritten in place: a new file
        assert storage.find_known(session, path, 11, 99) is None
        assert storage.find_known(session, "/photos/inbox/b.jpg", 10, 99) is None
        assert [i.id for i in storage.images_at_path(session, path)] == [image.id]


@given(st.dictionaries(st.text(max_size=5), st.one_of(st.integers(-1000, 1000), st.text(max_size=5)), max_size=5))
def test_parameters_key_ignores_key_order_and_number_type(parameters: dict) -> None:
    reordered = dict(reversed(list(parameters.items())))
    as_floats = {k: float(v) if isinstance(v, int) else v for k, v in parameters.items()}
    assert storage.parameters_key(parameters) == storage.parameters_key(reordered) == storage.parameters_key(as_floats)
