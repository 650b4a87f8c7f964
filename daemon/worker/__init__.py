"""The batched worker: leased claims, decode on a pool overlapped with the engine, atomic outputs, crash recovery.

:class:`Worker` is stepped with ``initialize`` / ``loop_once`` / ``shutdown``; :class:`WorkerThread` runs it in the
daemon. See :mod:`daemon.worker.worker` for a batch's course and :mod:`daemon.worker.recovery` for what happens
after a crash.
"""

from daemon.worker.analysis import Analyse, resolve_analyse
from daemon.worker.engines import BUILTIN, Engines, ModelUnavailable, load_engine, model_version
from daemon.worker.leases import LeaseKeeper, make_owner
from daemon.worker.outcome import Outcome, OutcomeKind
from daemon.worker.recovery import RecoveryReport, requeue_expired
from daemon.worker.thread import WorkerThread
from daemon.worker.worker import Worker

__all__ = [
    "BUILTIN",
    "Analyse",
    "Engines",
    "LeaseKeeper",
    "ModelUnavailable",
    "Outcome",
    "OutcomeKind",
    "RecoveryReport",
    "Worker",
    "WorkerThread",
    "load_engine",
    "make_owner",
    "model_version",
    "requeue_expired",
    "resolve_analyse",
]
