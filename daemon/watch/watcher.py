"""The inbox watcher service: observers feed a queue, ``loop_once(now)`` turns it into ready files.

Events are hints, never the truth: each one only makes the stability tracker look at a path, a startup scan and a
periodic rescan catch what no event reported (inotify drops events on overflow, polling misses short-lived states),
and a folder that appears is listed at once because the events of files written before its watch existed are lost.
Everything but the observers runs on the thread that calls ``loop_once``, so tests step it without sleeping.
"""

from __future__ import annotations

import logging
import math
import queue
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Protocol

from daemon.watch.handler import QueueingHandler
from daemon.watch.ignore import IgnoreRules
from daemon.watch.model import InboxHealth, ReadyFile, RejectedFile, WatchedInbox, WatcherOptions, check_unique_names
from daemon.watch.observer import InboxObserver, NativeFactory, PollingFactory, native_observer, polling_observer
from daemon.watch.scan import iter_candidates
from daemon.watch.stability import Clock, StabilityTracker, StableFile

logger = logging.getLogger(__name__)

Sniff = Callable[[Path], str | None]
"""Content sniffing: the image format of a file, or None when it is not an image (``core.imageio.sniff_format``)."""


class EventQueue(Protocol):
    """The thread-safe queue between observer threads and the loop (``queue.SimpleQueue`` by default)."""

    def put(self, item: tuple[str, str], /) -> None: ...
    def get_nowait(self) -> tuple[str, str]: ...


@dataclass
class _Inbox:
    """Runtime state of one inbox, owned by the loop thread."""

    spec: WatchedInbox
    rules: IgnoreRules
    tracker: StabilityTracker
    handler: QueueingHandler
    observer: InboxObserver
    next_scan: float = -math.inf
    scanned: bool = False
    last_rescan: float | None = None
    rescan_finds: int = 0


class InboxWatcher:
    """Watches several inboxes and reports files that stopped changing, once each.

    Lifecycle: ``start()`` (observers), then ``loop_once(now)`` regularly from one thread (the first call runs the
    startup scan), then ``stop()`` (joins every observer thread). ``sniff`` (optional) is called once per stable file;
    files it does not recognise go to ``on_rejected`` instead of being returned. ``known`` (optional) is asked before
    reporting a file; True means the caller already has it (e.g. from before a restart) and it is not reported.
    """

    def __init__(
        self,
        inboxes: Sequence[WatchedInbox],
        *,
        options: WatcherOptions | None = None,
        sniff: Sniff | None = None,
        known: Callable[[ReadyFile], bool] | None = None,
        on_rejected: Callable[[RejectedFile], None] | None = None,
        clock: Clock = time.monotonic,
        wall_clock: Clock = time.time,
        events: EventQueue | None = None,
        native: NativeFactory = native_observer,
        polling: PollingFactory = polling_observer,
    ) -> None:
        check_unique_names(inboxes)
        self.options = options if options is not None else WatcherOptions()
        self._sniff = sniff
        self._on_rejected = on_rejected
        self._clock = clock
        self._wall_clock = wall_clock
        self._events: EventQueue = events if events is not None else queue.SimpleQueue()
        self._started = False
        self._inboxes: dict[str, _Inbox] = {}
        for spec in inboxes:
            handler = QueueingHandler(spec.name, self._events.put)
            observer = InboxObserver(
                spec,
                handler,
                poll_interval=self.options.poll_interval_seconds,
                native=native,
                polling=polling,
                backoff=self.options.restart_backoff_seconds,
                backoff_max=self.options.restart_backoff_max_seconds,
                stop_timeout=self.options.stop_timeout_seconds,
            )
            tracker = StabilityTracker(
                spec.settle_seconds,
                clock=clock,
                known=_known_adapter(spec, known) if known is not None else None,
                min_size=self.options.min_ready_size,
            )
            self._inboxes[spec.name] = _Inbox(spec, spec.rules(), tracker, handler, observer)

    # --- lifecycle -------------------------------------------------------------------------------------------------

    def start(self) -> None:
        """Start one observer per inbox. An inbox that cannot be watched yet is reported in health and retried."""
        if self._started:
            raise RuntimeError("watcher already started")
        self._started = True
        now = self._clock()
        try:
            for box in self._inboxes.values():
                box.next_scan = -math.inf  # the first loop_once lists everything that arrived while we were away
                box.observer.start(now)
        except BaseException:
            self.stop()
            raise

    def loop_once(self, now: float | None = None) -> list[ReadyFile]:
        """One step: supervise observers, drain events, rescan when due, return the files that became ready."""
        if not self._started:
            raise RuntimeError("watcher not started")
        now = self._clock() if now is None else now
        for box in self._inboxes.values():
            if box.observer.supervise(now):
                box.next_scan = now  # events were lost while it was down
        self._drain(now)
        for box in self._inboxes.values():
            if now >= box.next_scan:
                self._scan(box, now)
        ready: list[ReadyFile] = []
        for box in self._inboxes.values():
            for stable in box.tracker.poll(now):
                item = self._check(box, stable, now)
                if item is not None:
                    ready.append(item)
        return ready

    def stop(self) -> None:
        """Stop and join every observer; idempotent."""
        for box in self._inboxes.values():
            box.observer.stop()
        self._started = False

    def __enter__(self) -> InboxWatcher:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- queries and hand-back ---------------------------------------------------------------------------------------

    def requeue(self, files: Iterable[ReadyFile]) -> None:
        """Report these files again once they are stable (the caller could not take them). Call from the loop thread."""
        now = self._clock()
        for file in files:
            box = self._inboxes[file.inbox]
            box.tracker.forget(file.path)
            box.tracker.observe(file.path, now)

    def health(self) -> tuple[InboxHealth, ...]:
        """A snapshot per inbox, in the order given; safe to call from another thread."""
        return tuple(
            InboxHealth(
                name=box.spec.name,
                root=box.spec.root,
                mode=box.observer.mode,
                polling_reason=box.observer.polling_reason,
                alive=box.observer.is_alive(),
                restarts=box.observer.restarts,
                last_rescan=box.last_rescan,
                rescan_finds=box.rescan_finds,
                handler_errors=box.handler.errors,
                pending=box.tracker.pending,
                last_error=box.observer.last_error,
            )
            for box in list(self._inboxes.values())
        )

    def alive(self) -> bool:
        """Whether every inbox has a running observer (for the systemd watchdog)."""
        return all(box.observer.is_alive() for box in list(self._inboxes.values()))

    def inbox_observer(self, name: str) -> InboxObserver:
        """The supervised observer of one inbox (diagnostics and tests)."""
        return self._inboxes[name].observer

    # --- steps -------------------------------------------------------------------------------------------------------

    def _drain(self, now: float) -> None:
        """Move queued event paths into the trackers; folders are listed at once."""
        batch: dict[tuple[str, str], None] = {}
        for _ in range(self.options.max_events_per_loop):
            try:
                batch[self._events.get_nowait()] = None
            except queue.Empty:
                break
        for name, raw in batch:
            box = self._inboxes.get(name)
            if box is None:
                continue
            path = Path(raw)
            try:
                relative = path.relative_to(box.spec.root)
            except ValueError:
                continue
            if not relative.parts:
                continue  # the root itself
            if path.is_dir():
                for file in iter_candidates(box.spec.root, box.rules, start=path):
                    box.tracker.observe(file, now)
            elif box.rules.accepts(relative):
                box.tracker.observe(path, now)

    def _scan(self, box: _Inbox, now: float) -> None:
        """Observe every candidate file; forget reported files that left (only after a complete listing)."""
        errors: list[OSError] = []
        seen: set[Path] = set()
        finds = 0
        for path in iter_candidates(box.spec.root, box.rules, on_error=errors.append):
            seen.add(path)
            if box.tracker.observe(path, now):
                finds += 1
        if not errors:
            box.tracker.retain(seen)
        if box.scanned and finds:
            box.rescan_finds += finds
            logger.info("inbox %s: rescan found %d file(s) no event had reported", box.spec.name, finds)
        box.scanned = True
        box.last_rescan = self._wall_clock()
        rescan = self.options.rescan_seconds
        box.next_scan = now + rescan if rescan > 0 else math.inf

    def _check(self, box: _Inbox, stable: StableFile, now: float) -> ReadyFile | None:
        """Sniff a stable file: a ReadyFile, or None when it was rejected or vanished."""
        root = box.spec.root
        ready = ReadyFile(box.spec.name, root, stable.path, stable.path.relative_to(root), stable.size, stable.mtime_ns)
        if self._sniff is None:
            return ready
        try:
            fmt = self._sniff(stable.path)
        except FileNotFoundError:
            box.tracker.forget(stable.path)
            return None
        except Exception:  # unreadable for now: the pipeline classifies transient and permanent errors
            logger.warning("inbox %s: cannot sniff %s", box.spec.name, stable.path, exc_info=True)
            return ready
        if fmt is not None:
            return replace(ready, format=fmt)
        if not _readable(stable.path):  # a sniffer that never raises says None for a locked file too
            return ready
        rejected = RejectedFile(ready, "content is not a recognised image format")
        if self._on_rejected is None:
            logger.warning("inbox %s: %s: %s", box.spec.name, ready.relative, rejected.reason)
            return None
        try:
            self._on_rejected(rejected)
        except Exception:  # the caller could not record it: try again after the settle time
            logger.exception("inbox %s: on_rejected failed for %s", box.spec.name, ready.relative)
            box.tracker.forget(stable.path)
            box.tracker.observe(stable.path, now)
        return None


def _readable(path: Path) -> bool:
    """Whether the first byte of a file can be read now (else a rejection would be a guess)."""
    try:
        with path.open("rb") as file:
            file.read(1)
    except OSError:
        return False
    return True


def _known_adapter(spec: WatchedInbox, known: Callable[[ReadyFile], bool]) -> Callable[[StableFile], bool]:
    """``known`` over a StableFile; an error counts as unknown (reporting twice is safe, losing a file is not)."""

    def adapter(stable: StableFile) -> bool:
        ready = ReadyFile(
            spec.name, spec.root, stable.path, stable.path.relative_to(spec.root), stable.size, stable.mtime_ns
        )
        try:
            return bool(known(ready))
        except Exception:
            logger.warning("inbox %s: known() failed for %s", spec.name, stable.path, exc_info=True)
            return False

    return adapter
