"""Log lines of the daemon: human-readable text or one JSON object per line (``[logging] format``), on stderr.

journald and most log shippers take stderr as is; JSON lines keep fields (logger, thread, exception) apart for them.
Called once by ``enhancerd run`` before anything else logs.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import Any, TextIO

from config import LogFormat, LoggingSettings

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s [%(threadName)s]: %(message)s"

_STANDARD = frozenset(vars(logging.makeLogRecord({})).keys()) | {"message", "asctime"}
"""Attributes every record has; anything else was passed with ``extra=`` and goes into the JSON object."""

QUIET_LOGGERS = ("waitress", "apscheduler", "watchdog", "PIL", "urllib3", "alembic.runtime.plugins")
"""Libraries whose INFO lines would drown the daemon's own; they log at WARNING and above."""


class JsonFormatter(logging.Formatter):
    """One JSON object per record: ``time`` (UTC, ISO 8601), ``level``, ``logger``, ``thread``, ``message``, extras."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "thread": record.threadName,
            "message": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_"):
                entry[key] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str, ensure_ascii=False)


def configure_logging(settings: LoggingSettings, *, verbose: bool = False, stream: TextIO | None = None) -> None:
    """Replace the root logger's handlers with one stderr handler in the configured format and level."""
    handler = logging.StreamHandler(stream or sys.stderr)
    if settings.format is LogFormat.JSON:
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter(TEXT_FORMAT))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(logging.DEBUG if verbose else getattr(logging, settings.level.upper(), logging.INFO))
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(max(logging.WARNING, root.level))
