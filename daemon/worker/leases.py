"""Keeping the leases of the batch in flight alive, and telling which lease owners are dead.

A lease that is not renewed returns its image to the queue (crash recovery); a long batch must therefore renew its
leases while the engine runs, which only another thread can do. Owners are ``host:pid:token``: after a restart on the
same host, the leases of a process that no longer exists can be ended at once instead of waiting for them to expire.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import uuid
from collections.abc import Callable, Collection
from datetime import datetime

from sqlalchemy.orm import Session, sessionmaker

import storage

log = logging.getLogger(__name__)

RENEW_FRACTION = 1 / 3
"""Leases are renewed after this fraction of their duration, so two renewals can fail before one expires."""


def make_owner() -> str:
    """A lease owner id unique to this process incarnation: ``host:pid:token``."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:12]}"


def is_dead_owner(owner: str, me: str) -> bool:
    """Whether ``owner`` is a process on this host that is gone (or an earlier incarnation of this pid)."""
    parts = owner.rsplit(":", 2)
    mine = me.rsplit(":", 2)
    if owner == me or len(parts) != 3 or len(mine) != 3 or parts[0] != mine[0] or not parts[1].isdigit():
        return False
    pid = int(parts[1])
    if pid == os.getpid():
        return True  # same pid, another token: this process's previous life (a container restart)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


class LeaseKeeper:
    """Renews the leases of the tracked images every ``lease_seconds / 3`` on its own thread."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        owner: str,
        lease_seconds: float,
        clock: Callable[[], datetime] = storage.utcnow,
    ) -> None:
        self._sessions = sessions
        self._owner = owner
        self._lease_seconds = lease_seconds
        self._clock = clock
        self._ids: set[int] = set()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.lost: set[int] = set()
        """Images whose lease was found taken away (another worker or the reaper has them now)."""

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="enhancerd-leases", daemon=False)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                log.error("lease renewal thread did not stop within %.1f s", timeout)

    def is_alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def track(self, image_ids: Collection[int]) -> None:
        with self._lock:
            self._ids.update(image_ids)

    def untrack(self, image_ids: Collection[int]) -> None:
        with self._lock:
            self._ids.difference_update(image_ids)
            self.lost.difference_update(image_ids)

    def renew(self) -> list[int]:
        """Renew now; returns the ids renewed."""
        with self._lock:
            ids = sorted(self._ids)
        if not ids:
            return []
        with self._sessions.begin() as session:
            renewed = storage.renew_leases(session, self._owner, ids, self._lease_seconds, self._clock())
        with self._lock:
            missing = (set(ids) - set(renewed)) & self._ids  # still tracked: not merely finished meanwhile
            self.lost.update(missing)
        if missing:
            log.warning("lost the lease of image(s) %s; their results will not be recorded", sorted(missing))
        return renewed

    def _run(self) -> None:
        interval = max(0.05, self._lease_seconds * RENEW_FRACTION)
        while not self._stop.wait(interval):
            try:
                self.renew()
            except Exception:  # the database may be busy for a moment; the next round tries again
                log.exception("renewing leases failed")
