"""Per-app runtime objects (built by ``create_app``, kept in ``app.extensions``; never module globals)."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from flask import current_app
from sqlalchemy.orm import Session, sessionmaker

import storage
from daemon.api.context import ApiContext

log = logging.getLogger(__name__)

EXTENSION = "enhancerd"

T = TypeVar("T")


class StaleWhileRevalidate(Generic[T]):
    """A value that is expensive to compute and read by many clients at once.

    Fresh (younger than ``ttl``): returned as is. Stale: returned as is too, and the caller is told to refresh it
    after its response is sent (``response.call_on_close``), one refresher at a time; so under load no request waits
    for the computation, and the value is never older than about ``ttl`` plus one computation. Only the very first
    reading (or one older than ``max_age``) is computed while the client waits.
    """

    def __init__(
        self,
        compute: Callable[[], T],
        ttl: float,
        *,
        max_age: float = 30.0,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._compute = compute
        self._monotonic = monotonic
        self._ttl = ttl
        self._max_age = max(max_age, ttl)
        self._lock = threading.Lock()
        self._refreshing = False
        self._value: T | None = None
        self._at = -float("inf")

    def get(self) -> tuple[T, Callable[[], None] | None]:
        """The value, and a refresh to run after the response (``None`` when fresh or someone else refreshes)."""
        if self._ttl <= 0:  # caching switched off (tests): always exact
            return self._compute(), None
        now = self._monotonic()
        with self._lock:
            value, age = self._value, now - self._at
            if value is not None and age < self._ttl:
                return value, None
            usable = value is not None and age < self._max_age
            if usable and self._refreshing:
                return value, None  # type: ignore[return-value]
            self._refreshing = True
        if not usable:
            try:
                return self._refresh(), None
            finally:
                with self._lock:
                    self._refreshing = False
        return value, self._refresh_quietly  # type: ignore[return-value]

    def _refresh(self) -> T:
        value = self._compute()
        with self._lock:
            self._value, self._at = value, self._monotonic()
        return value

    def _refresh_quietly(self) -> None:
        try:
            self._refresh()
        except Exception:
            log.exception("background refresh failed (the previous value is kept)")
        finally:
            with self._lock:
                self._refreshing = False


@dataclass
class AppState:
    """What the views share within one app."""

    context: ApiContext
    read_sessions: sessionmaker[Session]
    status: StaleWhileRevalidate[dict[str, Any]]
    openapi: dict[str, Any]
    """The OpenAPI document, built once from the blueprints' declarations."""


def app_state() -> AppState:
    state: AppState = current_app.extensions[EXTENSION]
    return state


def readonly_sessions(context: ApiContext) -> sessionmaker[Session]:
    """Sessions that never take SQLite's write lock, so listings do not queue behind the worker's commits."""
    if context.read_sessions is not None:
        return context.read_sessions
    bind = context.sessions.kw.get("bind")
    base = getattr(bind, "_proxied", bind)  # an OptionEngine (storage.writer) wraps the plain engine
    if base is None:
        return context.sessions
    return storage.session_factory(base, readonly=True)
