"""SIGTERM and SIGINT: the first only sets an Event (the main loop does the stopping); a second one forces the exit.

A signal handler interrupts the main thread anywhere (even inside a lock the logging module holds), so it does the
least possible: set the Event, or on the second signal write one line with ``os.write`` and ``os._exit(1)``.
"""

from __future__ import annotations

import os
import signal
import threading
from types import FrameType, TracebackType
from typing import Any

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)

FORCED_EXIT_CODE = 1


class StopSignals:
    """Context manager installing the handlers (main thread only) and restoring the previous ones on exit."""

    def __init__(self, stop: threading.Event) -> None:
        self._stop = stop
        self._previous: dict[int, Any] = {}
        self.received: int | None = None
        """The first signal received (for the log line the main loop writes)."""

    def __enter__(self) -> StopSignals:
        if threading.current_thread() is threading.main_thread():
            for number in STOP_SIGNALS:
                self._previous[number] = signal.signal(number, self._handle)
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        for number, handler in self._previous.items():
            signal.signal(number, handler)
        self._previous.clear()

    def _handle(self, number: int, frame: FrameType | None) -> None:
        if self._stop.is_set():
            name = signal.Signals(number).name
            os.write(2, f"enhancerd: second {name} while stopping; exiting now without cleanup\n".encode())
            os._exit(FORCED_EXIT_CODE)
        self.received = number
        self._stop.set()
