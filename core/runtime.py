"""Process-wide settings of the threading runtime under torch's CPU kernels; they only work before torch is imported.

torch's CPU kernels run on an OpenMP thread pool (libgomp in the Linux wheels). By default an idle OpenMP worker keeps
spinning for a while after each parallel region (libgomp: 300,000 spins) so that the next region starts without a
wake-up. On an idle machine that saves a little; on a shared one it is ruinous: with any other busy process on a
2-core box (a training run, a benchmark), the spinning worker burns the time slice that the thread it waits for needs,
and every one of the network's hundreds of parallel regions pays for it. Measured there with the built-in model:
64-96 px images took 50-900 ms instead of 7-14 ms, 1 MP images 1.6-1.8 s instead of 1.0 s. libgomp throttles the
spinning by itself once more OpenMP threads exist than CPUs, which is why the same call looked fast on a second thread
(that thread's team pushed the count over the limit), and slow on the main thread.

Waiting passively (sleep at once) costs nothing measurable at photo sizes on an idle machine (1 MP: about 0.31 s
either way) and a few milliseconds per thumbnail, so the command line asks for it; an ``OMP_WAIT_POLICY`` already in
the environment wins.
"""

from __future__ import annotations

import os
import sys
from collections.abc import MutableMapping

OPENMP_DEFAULTS: tuple[tuple[str, str], ...] = (("OMP_WAIT_POLICY", "PASSIVE"),)
"""Environment variables (the standard OpenMP one, honoured by libgomp, LLVM's and Intel's runtimes) and values."""


def configure_openmp(environ: MutableMapping[str, str] | None = None) -> bool:
    """Set :data:`OPENMP_DEFAULTS` where the environment does not choose; the composition root calls this first.

    Returns False, changing nothing, when torch is already imported: its OpenMP runtime read the environment when it
    was loaded, so setting the variables now would only mislead child processes and readers of the environment.
    """
    if "torch" in sys.modules:
        return False
    target = os.environ if environ is None else environ
    for name, value in OPENMP_DEFAULTS:
        target.setdefault(name, value)
    return True
