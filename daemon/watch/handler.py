"""The watchdog event handler: it only puts a path on a queue.

It runs on the observer thread, shared by all events of its inbox; a slow or raising handler would stall or kill the
observer, so it does no filtering and no I/O, and it swallows (and counts) every error.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable

from watchdog.events import (
    EVENT_TYPE_ATTRIB,
    EVENT_TYPE_CLOSED,
    EVENT_TYPE_CREATED,
    EVENT_TYPE_MODIFIED,
    EVENT_TYPE_MOVED,
    FileSystemEvent,
    FileSystemEventHandler,
)

logger = logging.getLogger(__name__)

EventSink = Callable[[tuple[str, str]], None]
"""Receives ``(inbox name, path)``; ``queue.SimpleQueue.put`` in production."""

_FILE_EVENTS = frozenset(
    {EVENT_TYPE_CREATED, EVENT_TYPE_MODIFIED, EVENT_TYPE_MOVED, EVENT_TYPE_CLOSED, EVENT_TYPE_ATTRIB}
)
_DIR_EVENTS = frozenset({EVENT_TYPE_CREATED, EVENT_TYPE_MOVED})  # a folder's "modified" fires for every file in it


def event_path(event: FileSystemEvent) -> str | None:
    """The path an event asks us to look at: the destination of a move, the source otherwise, or None to skip.

    Deletions are skipped: the tracker notices vanished files itself.
    """
    wanted = _DIR_EVENTS if event.is_directory else _FILE_EVENTS
    if event.event_type not in wanted:
        return None
    raw = event.dest_path if event.event_type == EVENT_TYPE_MOVED else event.src_path
    return os.fsdecode(raw) if raw else None


class QueueingHandler(FileSystemEventHandler):
    """Hands the path of every interesting event of one inbox to ``sink``; never raises."""

    def __init__(self, inbox: str, sink: EventSink) -> None:
        super().__init__()
        self.inbox = inbox
        self._sink = sink
        self.errors = 0
        """Events lost to an exception; written by the observer thread only."""

    def dispatch(self, event: FileSystemEvent) -> None:
        try:
            path = event_path(event)
            if path is not None:
                self._sink((self.inbox, path))
        except Exception:  # a raising handler would kill the observer thread, and with it every event of the inbox
            self.errors += 1
            logger.warning("inbox %s: event handler failed on %r", self.inbox, event, exc_info=True)
