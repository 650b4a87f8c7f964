"""Keep the garbage collector's full passes off the request path.

Importing torch, Flask and SQLAlchemy and loading the model leaves ~240,000 long-lived objects. Every full
(generation 2) collection walks them all: 30-80 ms on a 2-core machine, holding the GIL throughout. A 1,000-row
page allocates enough to trigger one every few requests, so without this an API request now and then waits for a
collection of objects that will never be garbage. Freezing the start-up heap moves those objects to a permanent
generation that collections skip (CPython's ``gc.freeze``); objects created later are collected as usual.
"""

from __future__ import annotations

import gc
import logging
import time

log = logging.getLogger(__name__)


def freeze_startup_heap() -> int:
    """Collect once, then exempt every surviving object from later collections. Returns how many were frozen."""
    started = time.perf_counter()
    gc.collect()
    gc.freeze()
    frozen = gc.get_freeze_count()
    log.debug("froze %d start-up objects in %.0f ms", frozen, (time.perf_counter() - started) * 1000)
    return frozen


def thaw_heap() -> None:
    """Give the frozen objects back to the collector (a stopped service in a longer-lived process, e.g. tests)."""
    gc.unfreeze()
