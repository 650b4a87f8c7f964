""" "Is this file complete?": a pure tracker with an injectable clock and stat, so it is tested without sleeping.

No event says that a writer has finished (a copy over SMB or a browser download close and reopen the file), so a
file is ready only once its size and mtime have stayed the same for ``settle_seconds``, the wait restarting on every
change. Files are remembered by identity (device, inode, size, mtime) once reported, so a rename within the inbox, a
second event or a rescan does not report them again; a file that changes is reported again.

Not thread-safe: one thread (the watcher loop) owns a tracker.
"""

from __future__ import annotations

import errno
import logging
import os
import stat as stat_module
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from daemon.watch import defaults

logger = logging.getLogger(__name__)

_GONE_ERRNOS = frozenset({errno.ENOENT, errno.ENOTDIR})
_EPSILON = 1e-9
"""Float rounding slack: a caller stepping 1.0 then 1.2 has waited 0.2 s, though 1.2 - 1.0 < 0.2 in binary."""


class StatResult(Protocol):
    """The fields of :func:`os.stat` the tracker reads (a fake in tests)."""

    @property
    def st_mode(self) -> int: ...
    @property
    def st_size(self) -> int: ...
    @property
    def st_mtime_ns(self) -> int: ...
    @property
    def st_dev(self) -> int: ...
    @property
    def st_ino(self) -> int: ...


StatFn = Callable[[Path], StatResult]
Clock = Callable[[], float]


@dataclass(frozen=True)
class FileState:
    """What stat says about a file; any difference counts as a change."""

    size: int
    mtime_ns: int
    dev: int
    ino: int

    @property
    def identity(self) -> tuple[int, int] | None:
        """(device, inode), or None on file systems without stable inode numbers (some FUSE and SMB mounts)."""
        return (self.dev, self.ino) if self.ino else None


@dataclass(frozen=True)
class StableFile:
    """A file whose size and mtime stayed unchanged for the settle time."""

    path: Path
    size: int
    mtime_ns: int


@dataclass
class _Pending:
    state: FileState
    since: float


class StabilityTracker:
    """Tracks candidate files until they stop changing.

    ``observe(path)`` on every event or scan hit, ``poll(now)`` regularly: it returns the files that became ready.
    ``known`` (optional) is asked about each file about to be reported; a True answer records it as reported without
    returning it (e.g. the database already has it from before a restart).
    """

    def __init__(
        self,
        settle_seconds: float,
        *,
        clock: Clock = time.monotonic,
        stat: StatFn = os.stat,
        known: Callable[[StableFile], bool] | None = None,
        min_size: int = defaults.MIN_READY_SIZE,
    ) -> None:
        if settle_seconds < 0:
            raise ValueError("settle_seconds must be >= 0")
        self.settle_seconds = settle_seconds
        self._clock = clock
        self._stat = stat
        self._known = known
        self._min_size = min_size
        self._pending: dict[Path, _Pending] = {}
        # key: (dev, ino), or the path where inodes mean nothing; value: where and how it was last seen when reported.
        self._reported: dict[object, tuple[Path, FileState]] = {}
        self._reported_key: dict[Path, object] = {}

    @property
    def pending(self) -> int:
        """How many files are waiting to settle."""
        return len(self._pending)

    def is_pending(self, path: Path) -> bool:
        """Whether ``path`` is waiting to settle."""
        return path in self._pending

    def observe(self, path: Path, now: float | None = None) -> bool:
        """Note that ``path`` may have changed; True when it is a file the tracker did not know (newly pending)."""
        now = self._clock() if now is None else now
        try:
            state = self._state(path)
        except OSError as exc:  # e.g. EIO on a network share: the next event, poll or rescan tries again
            logger.debug("cannot stat %s: %s", path, exc)
            return False
        if state is None:
            self._pending.pop(path, None)
            return False
        pending = self._pending.get(path)
        if pending is not None:
            if pending.state != state:
                pending.state, pending.since = state, now
            return False
        if self._already_reported(path, state):
            return False
        self._pending[path] = _Pending(state, now)
        return True

    def poll(self, now: float | None = None) -> list[StableFile]:
        """Re-stat every pending file; return (once) those unchanged for ``settle_seconds``; drop vanished ones."""
        now = self._clock() if now is None else now
        ready: list[StableFile] = []
        for path, pending in list(self._pending.items()):
            try:
                state = self._state(path)
            except OSError:
                pending.since = now  # cannot tell whether it is still changing: wait longer
                continue
            if state is None:
                del self._pending[path]
                continue
            if state != pending.state:
                pending.state, pending.since = state, now
                continue
            if now - pending.since + _EPSILON < self.settle_seconds or state.size < self._min_size:
                continue
            stable = StableFile(path, state.size, state.mtime_ns)
            known = self._known is not None and self._known(stable)
            del self._pending[path]
            if self._already_reported(path, state):
                continue
            self._mark_reported(path, state)
            if not known:
                ready.append(stable)
        return ready

    def forget(self, path: Path) -> None:
        """Drop everything known about ``path``, so that it is reported again (e.g. the caller failed to queue it)."""
        self._pending.pop(path, None)
        key = self._reported_key.pop(path, None)
        if key is not None:
            self._reported.pop(key, None)

    def retain(self, paths: Collection[Path]) -> None:
        """Forget reported files whose last known path is not in ``paths`` (all files a full scan just observed).

        Keeps memory bounded when files leave the inbox (archived, deleted), and lets a file that comes back later be
        reported again.
        """
        for path in [p for p in self._reported_key if p not in paths]:
            key = self._reported_key.pop(path)
            self._reported.pop(key, None)

    def _state(self, path: Path) -> FileState | None:
        """The file's state; None when it is gone or not a regular file. Other OSErrors propagate."""
        try:
            st = self._stat(path)
        except OSError as exc:
            if isinstance(exc, FileNotFoundError | NotADirectoryError) or exc.errno in _GONE_ERRNOS:
                return None
            raise
        if not stat_module.S_ISREG(st.st_mode):
            return None
        return FileState(st.st_size, st.st_mtime_ns, st.st_dev, st.st_ino)

    @staticmethod
    def _key(path: Path, state: FileState) -> object:
        return state.identity if state.identity is not None else path

    def _already_reported(self, path: Path, state: FileState) -> bool:
        """Whether this very file (same identity, size and mtime) was reported, maybe under another path (a move)."""
        key = self._key(path, state)
        entry = self._reported.get(key)
        if entry is None:
            return False
        old_path, old_state = entry
        if (old_state.size, old_state.mtime_ns) != (state.size, state.mtime_ns):
            return False
        if old_path != path:  # moved: remember the new place so that retain() keeps it
            if self._reported_key.get(old_path) == key:
                del self._reported_key[old_path]
            self._drop_path(path)
            self._reported[key] = (path, state)
            self._reported_key[path] = key
        return True

    def _mark_reported(self, path: Path, state: FileState) -> None:
        key = self._key(path, state)
        self._drop_path(path)
        previous = self._reported.get(key)
        if previous is not None and self._reported_key.get(previous[0]) == key:
            del self._reported_key[previous[0]]
        self._reported[key] = (path, state)
        self._reported_key[path] = key

    def _drop_path(self, path: Path) -> None:
        """Forget the file previously reported at ``path`` (replaced by another file)."""
        old_key = self._reported_key.pop(path, None)
        if old_key is not None:
            self._reported.pop(old_key, None)
