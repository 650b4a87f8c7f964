"""The start-up heap is frozen (full collections skip it) and can be thawed again."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator

import pytest

from daemon.heap import freeze_startup_heap, thaw_heap


class Node:
    def __init__(self) -> None:
        self.me = self


@pytest.fixture
def thawed() -> Iterator[None]:
    thaw_heap()
    yield
    thaw_heap()


def test_frozen_objects_are_skipped_by_collections_until_thawed(thawed: None) -> None:
    cycle = Node()
    alive = weakref.ref(cycle)
    assert freeze_startup_heap() > 0
    assert gc.get_freeze_count() > 0
    del cycle
    gc.collect()
    assert alive() is not None, "a frozen cycle is not collected"
    thaw_heap()
    assert gc.get_freeze_count() == 0
    gc.collect()
    assert alive() is None, "after thawing the collector frees it"


def test_objects_created_after_the_freeze_are_collected(thawed: None) -> None:
    freeze_startup_heap()
    cycle = Node()
    alive = weakref.ref(cycle)
    del cycle
    gc.collect()
    assert alive() is None
