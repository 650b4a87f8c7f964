"""Lower the CPU priority of the worker's threads so the API and the watchers stay responsive under load.

The daemon is one process: the API's threads, the watchers and the worker share its cores. A worker that keeps
both cores busy with the model (on a CPU-only box) or with decoding and analysis makes every API request wait for
a time slice. Linux schedules threads, not processes, and a thread's nice value is its own and is inherited by the
threads it starts (torch's OpenMP pool is started by the first forward pass on the thread that runs it), so raising
the nice value of the worker's threads alone gives the control plane the CPU first without slowing the worker when
nothing else wants the CPU.

Lowering one's own priority never needs privileges. Elsewhere than Linux a thread id is not something
``setpriority`` accepts, so the call does nothing there.
"""

from __future__ import annotations

import logging
import os
import sys
import threading

log = logging.getLogger(__name__)

MAX_NICE = 19


def lower_thread_priority(increment: int) -> bool:
    """Make the calling thread run ``increment`` nicer than the process's main thread (capped at 19); True when
    its nice value was raised. Idempotent: a thread started by an already lowered one is not lowered twice."""
    if increment <= 0 or not sys.platform.startswith("linux"):
        return False
    thread_id = threading.get_native_id()
    try:
        target = min(MAX_NICE, os.getpriority(os.PRIO_PROCESS, os.getpid()) + increment)
        if os.getpriority(os.PRIO_PROCESS, thread_id) >= target:
            return False
        os.setpriority(os.PRIO_PROCESS, thread_id, target)
    except OSError as exc:
        log.warning("could not lower the priority of thread %s: %s", threading.current_thread().name, exc)
        return False
    return True


def thread_nice() -> int:
    """The calling thread's nice value (Linux; the process's elsewhere)."""
    target = threading.get_native_id() if sys.platform.startswith("linux") else 0
    return os.getpriority(os.PRIO_PROCESS, target)
