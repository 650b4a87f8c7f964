"""One supervised watchdog observer per inbox: native inotify, or polling where configured or where inotify fails.

inotify can fail to start for reasons outside our control (``fs.inotify.max_user_watches`` or
``max_user_instances`` reached, an exotic file system); polling is slower but correct, so it is the fallback, and
the reason is kept for the status endpoint. A stopped watchdog observer cannot be started again, so a restart
builds a new one; attempts back off while they keep failing (e.g. the inbox folder is missing).
"""

from __future__ import annotations

import errno
import logging
import math
import threading
from collections.abc import Callable

from watchdog.events import FileSystemEventHandler
from watchdog.observers import Observer
from watchdog.observers.api import BaseObserver
from watchdog.observers.polling import PollingObserver

from daemon.watch import defaults
from daemon.watch.model import WatchedInbox, WatchMode

logger = logging.getLogger(__name__)

NativeFactory = Callable[[], BaseObserver]
PollingFactory = Callable[[float], BaseObserver]


def native_observer() -> BaseObserver:
    """watchdog's native observer (inotify on Linux); constructing it may already raise (EMFILE)."""
    return Observer()


def polling_observer(interval: float) -> BaseObserver:
    """watchdog's polling observer, walking the tree every ``interval`` seconds."""
    return PollingObserver(timeout=interval)


def describe_start_error(exc: BaseException) -> str:
    """A reason an operator can act on, for the usual inotify limits."""
    if isinstance(exc, OSError) and exc.errno == errno.ENOSPC:
        return f"inotify watch limit reached (raise fs.inotify.max_user_watches): {exc}"
    if isinstance(exc, OSError) and exc.errno in (errno.EMFILE, errno.ENFILE):
        return f"inotify instance limit reached (raise fs.inotify.max_user_instances): {exc}"
    return f"{type(exc).__name__}: {exc}"


def stop_observer(observer: BaseObserver, timeout: float) -> bool:
    """Stop and join an observer (started or not); True when its thread is gone."""
    observer.stop()  # also stops and joins its emitters and, for inotify, its reader thread
    try:
        observer.join(timeout)
    except RuntimeError:  # never started
        return True
    return not observer.is_alive()


class InboxObserver:
    """Keeps one watchdog observer running for one inbox, feeding ``handler``.

    Used from the watcher loop thread only; ``is_alive`` may be read from any thread.
    """

    def __init__(
        self,
        inbox: WatchedInbox,
        handler: FileSystemEventHandler,
        *,
        poll_interval: float = defaults.POLL_INTERVAL_SECONDS,
        native: NativeFactory = native_observer,
        polling: PollingFactory = polling_observer,
        backoff: float = defaults.RESTART_BACKOFF_SECONDS,
        backoff_max: float = defaults.RESTART_BACKOFF_MAX_SECONDS,
        stop_timeout: float = defaults.STOP_TIMEOUT_SECONDS,
    ) -> None:
        self.inbox = inbox
        self.handler = handler
        self._poll_interval = poll_interval
        self._native = native
        self._polling = polling
        self._backoff = backoff
        self._backoff_max = backoff_max
        self._stop_timeout = stop_timeout
        self.observer: BaseObserver | None = None
        self.mode: WatchMode | None = None
        self.polling_reason: str | None = None
        self.restarts = 0
        self.last_error: str | None = None
        self._attempted = False
        self._failures = 0
        self._next_attempt = -math.inf

    def start(self, now: float) -> bool:
        """Start observing; False (with ``last_error`` set and a retry time) when no observer could start."""
        self._attempted = True
        root = self.inbox.root
        if not root.is_dir():
            return self._failed(now, f"inbox folder {root} is missing or not a folder")
        if self.inbox.polling:
            reason = "configured"
        else:
            try:
                self.observer = self._launch(self._native)
            except Exception as exc:  # any failure of inotify leaves polling as the better option
                reason = f"inotify failed: {describe_start_error(exc)}"
                logger.warning("inbox %s: %s; falling back to polling", self.inbox.name, reason)
            else:
                return self._started(WatchMode.INOTIFY, None)
        try:
            self.observer = self._launch(lambda: self._polling(self._poll_interval))
        except Exception as exc:
            return self._failed(now, f"cannot start polling observer: {describe_start_error(exc)}")
        return self._started(WatchMode.POLLING, reason)

    def is_alive(self) -> bool:
        """Whether the observer, its emitters and (for inotify) its reader thread all run."""
        observer = self.observer
        if observer is None or not observer.is_alive():
            return False
        if not all(emitter.is_alive() for emitter in list(observer.emitters)):
            return False  # e.g. the inbox folder was deleted: the emitter stops, the observer does not
        reader = getattr(observer, "_inotify_fd", None)  # watchdog >= 6: one reader thread per InotifyObserver
        return not (isinstance(reader, threading.Thread) and not reader.is_alive())

    def supervise(self, now: float) -> bool:
        """Restart a dead observer when its backoff allows; True when one was (re)started now (events were lost)."""
        if self.is_alive() or now < self._next_attempt:
            return False
        if self._attempted:
            self.restarts += 1
        if self.observer is not None:
            logger.warning("inbox %s: observer stopped unexpectedly, restarting", self.inbox.name)
        self._discard()
        return self.start(now)

    def stop(self) -> None:
        """Stop and join the observer and all its threads."""
        self._discard()

    def _launch(self, factory: Callable[[], BaseObserver]) -> BaseObserver:
        observer = factory()
        try:
            observer.name = f"watch-{self.inbox.name}"
            observer.schedule(self.handler, str(self.inbox.root), recursive=True)
            observer.start()
        except BaseException:
            stop_observer(observer, self._stop_timeout)
            raise
        return observer

    def _discard(self) -> None:
        observer, self.observer = self.observer, None
        if observer is not None and not stop_observer(observer, self._stop_timeout):
            self.last_error = f"observer thread did not stop within {self._stop_timeout} s"
            logger.error("inbox %s: %s", self.inbox.name, self.last_error)

    def _started(self, mode: WatchMode, reason: str | None) -> bool:
        self.mode, self.polling_reason = mode, reason
        self.last_error = None
        self._failures = 0
        self._next_attempt = -math.inf
        logger.info(
            "inbox %s: watching %s (%s%s)",
            self.inbox.name,
            self.inbox.root,
            mode.value,
            f": {reason}" if reason else "",
        )
        return True

    def _failed(self, now: float, error: str) -> bool:
        self.last_error = error
        self._failures += 1
        delay = min(self._backoff_max, self._backoff * 2 ** (self._failures - 1))
        self._next_attempt = now + delay
        logger.error("inbox %s: %s (next attempt in %.1f s)", self.inbox.name, error, delay)
        return False
