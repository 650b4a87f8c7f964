"""From the watchers to the queue: ready files become intake requests, and a queued image wakes the worker.

Files whose content sniffing does not recognise as an image are recorded through intake like any other: the worker
then fails them with the decoder's reason and moves them to the failed folder with a note. One path for every bad
file (whether sniffing or decoding notices first) means the reason is always recorded and the file always kept.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

from config import Settings
from daemon.intake import Intake, IntakeOutcome, IntakeRequest
from daemon.metrics import Metrics
from daemon.watch import InboxHealth, ReadyFile, RejectedFile, WatchedInbox, WatcherOptions

log = logging.getLogger(__name__)


class WakingIntake(Intake):
    """Intake that wakes the worker after committing a new ``queued`` image (watchers and API uploads alike) and
    counts new duplicates."""

    def __init__(
        self,
        *args: object,
        on_queued: Callable[[], None],
        on_duplicate: Callable[[], None] = lambda: None,
        **kwargs: object,
    ) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self._on_queued = on_queued
        self._on_duplicate = on_duplicate

    def submit(self, request: IntakeRequest) -> IntakeOutcome:
        outcome = super().submit(request)
        if not outcome.already_known:
            if outcome.state == "queued":
                self._on_queued()
            elif outcome.state == "duplicate":
                self._on_duplicate()
        return outcome


class WatcherMetrics:
    """Turns the watcher's health counters (restarts, rescan finds per inbox) into Prometheus counter increments."""

    def __init__(self, metrics: Metrics) -> None:
        self._metrics = metrics
        self._seen: dict[tuple[str, str], int] = {}

    def update(self, health: Sequence[InboxHealth]) -> None:
        for inbox in health:
            for name, value, counter in (
                ("restarts", inbox.restarts, self._metrics.watcher_restarts),
                ("rescan_finds", inbox.rescan_finds, self._metrics.rescan_finds),
            ):
                before = self._seen.get((inbox.name, name), 0)
                if value > before:
                    counter.labels(inbox=inbox.name).inc(value - before)
                self._seen[(inbox.name, name)] = value


class InboxFeed:
    """The watcher thread's callbacks (they run on that thread)."""

    def __init__(self, intake: Intake) -> None:
        self._intake = intake

    def known(self, file: ReadyFile) -> bool:
        return self._intake.is_known(file.path, file.size, file.mtime_ns)

    def on_ready(self, files: Sequence[ReadyFile]) -> None:
        """Record each file; one that vanished is skipped.

        A file that cannot be read yet, or a database error, raises after the others were recorded: the watcher
        thread then reports the batch again later (intake skips the files it already has).
        """
        unreadable: list[str] = []
        for file in files:
            if not self._submit(file):
                unreadable.append(str(file.path))
        if unreadable:
            raise OSError(f"cannot read {len(unreadable)} file(s) yet, e.g. {unreadable[0]}")

    def on_rejected(self, rejected: RejectedFile) -> None:
        log.info("%s: %s; recording it so the reason is kept", rejected.file.path, rejected.reason)
        if not self._submit(rejected.file):
            raise OSError(f"cannot read {rejected.file.path} yet")

    def _submit(self, file: ReadyFile) -> bool:
        request = IntakeRequest(file.inbox, file.path, file.relative, file.size, file.mtime_ns)
        try:
            self._intake.submit(request)
        except FileNotFoundError:
            log.info("%s disappeared before it was recorded", file.path)
        except OSError as error:
            log.warning("cannot read %s to record it: %s", file.path, error)
            return False
        return True


def watched_inboxes(settings: Settings) -> list[WatchedInbox]:
    return [
        WatchedInbox(
            name=inbox.name,
            root=inbox.path,
            polling=inbox.polling,
            settle_seconds=inbox.settle_seconds,
            extra_ignores=inbox.ignore,
            extensions=frozenset(inbox.extensions),
        )
        for inbox in settings.inboxes
    ]


def watcher_options(settings: Settings) -> WatcherOptions:
    return WatcherOptions(
        rescan_seconds=settings.watcher.rescan_seconds,
        poll_interval_seconds=settings.watcher.poll_interval_seconds,
    )
