"""Retention: per-inbox policies that delete old outputs, originals and failed files, on a schedule and on demand.

Files go to a trash folder first (purged after ``trash_days``); rows stay (``deleted``) for statistics. See
:mod:`daemon.retention.plan` (what goes, shared by dry and real runs), :mod:`daemon.retention.runner` (doing it
crash-safely) and :mod:`daemon.retention.policy` (configured policies and API overrides).
"""

from daemon.retention.plan import RetentionItem, SkippedItem
from daemon.retention.policy import POLICY_KEYS, PolicyError
from daemon.retention.runner import RetentionBusy, RetentionReport, RetentionRunner
from daemon.retention.trash import PurgeResult

__all__ = [
    "POLICY_KEYS",
    "PolicyError",
    "PurgeResult",
    "RetentionBusy",
    "RetentionItem",
    "RetentionReport",
    "RetentionRunner",
    "SkippedItem",
]
