"""Process-wide settings of the thread pools under torch and numpy; they only work before those libraries load.

**OpenMP (torch).** torch's CPU kernels run on an OpenMP thread pool (libgomp in the Linux wheels). By default an
idle OpenMP worker keeps spinning for a while after each parallel region (libgomp: 300,000 spins) so that the next
region starts without a wake-up. On an idle machine that saves a little; on a shared one it is ruinous: with any
other busy process on a 2-core box (a training run, a benchmark), the spinning worker burns the time slice that the
thread it waits for needs, and every one of the network's hundreds of parallel regions pays for it. Measured there
with the built-in model: 64-96 px images took 50-900 ms instead of 7-14 ms, 1 MP images 1.6-1.8 s instead of 1.0 s.
Waiting passively (sleep at once) costs nothing measurable at photo sizes on an idle machine (1 MP: about 0.31 s
either way) and a few milliseconds per thumbnail.

**OpenBLAS (numpy).** The analyser's matrix products are small (49x49 patch covariances) and the daemon already runs
one analysis per image on several pool threads at once. A multi-threaded OpenBLAS under concurrent callers spends
its time handing work between its own threads: measured in the daemon on 2 cores, a quarter of all samples sat in
one 49x49 covariance product and end-to-end throughput fell to 73 % of the in-process pipeline's. One BLAS thread
per caller keeps the parallelism where it pays (across images).

The command line calls :func:`configure_threading` first; a value already in the environment wins.
"""

from __future__ import annotations

import os
import sys
from collections.abc import MutableMapping

THREADING_DEFAULTS: tuple[tuple[str, str, str], ...] = (
    ("OMP_WAIT_POLICY", "PASSIVE", "torch"),
    ("OPENBLAS_NUM_THREADS", "1", "numpy"),
)
"""(environment variable, value, the module whose runtime reads it when it loads)."""


def configure_threading(environ: MutableMapping[str, str] | None = None) -> bool:
    """Set :data:`THREADING_DEFAULTS` where the environment does not choose; the composition root calls this first.

    A variable whose library is already imported is left alone (its runtime read the environment when it loaded,
    so setting it now would only mislead child processes); returns False when any was skipped for that reason.
    """
    target = os.environ if environ is None else environ
    applied = True
    for name, value, module in THREADING_DEFAULTS:
        if module in sys.modules:
            applied = False
            continue
        target.setdefault(name, value)
    return applied
