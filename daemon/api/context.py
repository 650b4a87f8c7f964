"""Everything the API needs, handed in by the composition root (the API never builds its own dependencies)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy.orm import Session, sessionmaker

from config import Settings
from daemon.metrics import Metrics

if TYPE_CHECKING:
    from daemon.intake import Intake
    from daemon.retention import RetentionRunner

Analyse = Callable[..., Any]
"""``analyse(pixels, quantization=None) -> Analysis`` with ``.maps.noise/.blur/.blockiness`` (core.analysis.analyze)."""


@dataclass(frozen=True)
class ApiContext:
    """The API's dependencies. ``status`` returns live facts only the running daemon knows (watcher health per
    inbox, worker state, device, precision, model version); the API merges them with the database's numbers."""

    settings: Settings
    sessions: sessionmaker[Session]
    """``storage.session_factory(engine)``: write sessions (reprocess, pause, uploads)."""
    metrics: Metrics
    intake: Intake | None
    """``None`` in tests that do not upload (uploads then answer 503)."""
    status: Callable[[], dict[str, Any]]
    retention: RetentionRunner
    clock: Callable[[], datetime]
    """Timezone-aware UTC now; injectable for tests."""
    read_sessions: sessionmaker[Session] | None = None
    """Read-only sessions (``session_factory(engine, readonly=True)``) so listings never queue behind SQLite's
    write lock; ``None`` derives them from ``sessions``."""
    analyse: Analyse | None = None
    """The analyser behind ``/heatmap``; ``None`` imports ``core.analysis.analyze`` on first use."""
    status_cache_seconds: float = 1.0
    """``storage.status_numbers`` costs 100-190 ms on a large database: dashboards polling many times a second share
    one reading per this many seconds."""
