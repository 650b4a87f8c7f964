"""The watcher's plain values: what it is told to watch, and what it reports.

They are frozen so they can cross threads; the caller builds them from its configuration (this package reads none).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

from daemon.watch import defaults
from daemon.watch.ignore import IgnoreRules, normalize_extensions


@dataclass(frozen=True)
class WatchedInbox:
    """One inbox folder, watched recursively.

    ``root`` is made absolute and resolved (a symlinked inbox is watched at its target, since inotify does not follow
    the link). ``extensions`` may be written ``"jpg"`` or ``".JPG"``.
    """

    name: str
    root: Path
    polling: bool = False
    settle_seconds: float = defaults.SETTLE_SECONDS
    extra_ignores: tuple[str, ...] = ()
    extensions: frozenset[str] = defaults.EXTENSIONS

    def __post_init__(self) -> None:
        if not self.name:
            raise ValueError("an inbox needs a name")
        if not math.isfinite(self.settle_seconds) or self.settle_seconds < 0:
            raise ValueError(f"inbox {self.name!r}: settle_seconds must be >= 0, not {self.settle_seconds}")
        object.__setattr__(self, "root", Path(self.root).expanduser().resolve())
        object.__setattr__(self, "extra_ignores", tuple(self.extra_ignores))
        object.__setattr__(self, "extensions", normalize_extensions(self.extensions))
        self.rules()  # validates the patterns now rather than at the first event

    def rules(self) -> IgnoreRules:
        """The ignore rules and extension whitelist of this inbox."""
        return IgnoreRules(extra=self.extra_ignores, extensions=self.extensions)


@dataclass(frozen=True)
class WatcherOptions:
    """Timing shared by all inboxes of one watcher."""

    rescan_seconds: float = defaults.RESCAN_SECONDS
    poll_interval_seconds: float = defaults.POLL_INTERVAL_SECONDS
    restart_backoff_seconds: float = defaults.RESTART_BACKOFF_SECONDS
    restart_backoff_max_seconds: float = defaults.RESTART_BACKOFF_MAX_SECONDS
    stop_timeout_seconds: float = defaults.STOP_TIMEOUT_SECONDS
    max_events_per_loop: int = defaults.MAX_EVENTS_PER_LOOP
    min_ready_size: int = defaults.MIN_READY_SIZE

    def __post_init__(self) -> None:
        if self.poll_interval_seconds <= 0:
            raise ValueError("poll_interval_seconds must be > 0")
        if self.restart_backoff_seconds < 0 or self.restart_backoff_max_seconds < self.restart_backoff_seconds:
            raise ValueError("restart backoff must satisfy 0 <= restart_backoff_seconds <= restart_backoff_max_seconds")
        if self.max_events_per_loop < 1:
            raise ValueError("max_events_per_loop must be >= 1")


@dataclass(frozen=True)
class ReadyFile:
    """A file that has stopped changing and passed the ignore rules (and the sniff hook, when one is given).

    ``format`` is what the sniff hook said, or None when there is no hook or it could not read the file (the pipeline
    decides then).
    """

    inbox: str
    root: Path
    path: Path
    relative: Path
    size: int
    mtime_ns: int
    format: str | None = None


@dataclass(frozen=True)
class RejectedFile:
    """A stable file with a whitelisted name whose content the sniff hook did not recognise as an image."""

    file: ReadyFile
    reason: str


class WatchMode(StrEnum):
    """How an inbox is observed."""

    INOTIFY = "inotify"
    """watchdog's native observer (inotify on Linux)."""
    POLLING = "polling"
    """watchdog's polling observer: configured (network shares) or the fallback when inotify cannot start."""


@dataclass(frozen=True)
class InboxHealth:
    """A snapshot of one inbox's watcher, for the status endpoint and the systemd watchdog.

    ``last_rescan`` is wall-clock epoch seconds of the last full scan (startup scan included); ``rescan_finds`` counts
    files that a periodic rescan saw before any event did (non-zero means events were lost, or polling was slower).
    ``restarts`` counts the supervisor's attempts to start a dead observer again.
    """

    name: str
    root: Path
    mode: WatchMode | None
    polling_reason: str | None
    alive: bool
    restarts: int
    last_rescan: float | None
    rescan_finds: int
    handler_errors: int
    pending: int
    last_error: str | None = None

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form (paths and enums as strings)."""
        return {
            "name": self.name,
            "root": str(self.root),
            "mode": self.mode.value if self.mode is not None else None,
            "polling_reason": self.polling_reason,
            "alive": self.alive,
            "restarts": self.restarts,
            "last_rescan": self.last_rescan,
            "rescan_finds": self.rescan_finds,
            "handler_errors": self.handler_errors,
            "pending": self.pending,
            "last_error": self.last_error,
        }


def check_unique_names(inboxes: Iterable[WatchedInbox]) -> None:
    """Refuse two inboxes with one name: health and ready files are keyed by it."""
    seen: set[str] = set()
    for inbox in inboxes:
        if inbox.name in seen:
            raise ValueError(f"two inboxes are named {inbox.name!r}")
        seen.add(inbox.name)
