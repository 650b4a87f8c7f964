"""Watching inboxes: observers, ignore rules and a stability tracker that report files once they are complete.

Takes plain values (no configuration or database access) and reports :class:`ReadyFile` values.
"""

from __future__ import annotations

from daemon.watch.handler import QueueingHandler
from daemon.watch.ignore import IgnoreRules
from daemon.watch.model import InboxHealth, ReadyFile, RejectedFile, WatchedInbox, WatcherOptions, WatchMode
from daemon.watch.observer import InboxObserver
from daemon.watch.runner import WatcherThread
from daemon.watch.scan import iter_candidates
from daemon.watch.stability import StabilityTracker, StableFile
from daemon.watch.watcher import InboxWatcher, Sniff

__all__ = [
    "IgnoreRules",
    "InboxHealth",
    "InboxObserver",
    "InboxWatcher",
    "QueueingHandler",
    "ReadyFile",
    "RejectedFile",
    "Sniff",
    "StabilityTracker",
    "StableFile",
    "WatchMode",
    "WatchedInbox",
    "WatcherOptions",
    "WatcherThread",
    "iter_candidates",
]
