"""Named defaults of the inbox watcher, one place, each saying why it has its value.

The composition root normally passes values read from the configuration; these are the fallbacks and what tests use
when they do not care.
"""

from __future__ import annotations

SETTLE_SECONDS = 2.0
"""A file is ready once its size and mtime have been unchanged this long: longer than the pauses of a copy over SMB."""

RESCAN_SECONDS = 300.0
"""Period of the full rescan of every inbox, the safety net for events inotify dropped on overflow (0 disables it)."""

POLL_INTERVAL_SECONDS = 2.0
"""Interval of watchdog's polling observer: every tick walks the whole tree, so not too often on network shares."""

LOOP_INTERVAL_SECONDS = 0.25
"""Pause between two ``loop_once`` calls in :class:`~daemon.watch.runner.WatcherThread`; adds to the latency."""

RESTART_BACKOFF_SECONDS = 1.0
"""First wait before starting a failed observer again; it doubles after each failure."""

RESTART_BACKOFF_MAX_SECONDS = 60.0
"""Longest wait between two attempts to start an observer (e.g. while its inbox folder is missing)."""

STOP_TIMEOUT_SECONDS = 5.0
"""How long ``stop()`` waits for each thread to end before reporting it as stuck."""

MAX_EVENTS_PER_LOOP = 50_000
"""Events drained per ``loop_once`` at most, so that a flood cannot keep the loop from polling and rescanning."""

MIN_READY_SIZE = 1
"""Files smaller than this are never ready: an empty file is usually one whose writer has not written yet."""

EXTENSIONS: frozenset[str] = frozenset({"jpg", "jpeg", "png", "tif", "tiff", "webp", "bmp"})
"""Extensions (lower case, no dot) the watcher hands on; content sniffing later confirms the format."""

BUILTIN_IGNORES: tuple[str, ...] = (
    ".*",
    "._*",
    ".DS_Store",
    "Thumbs.db",
    "desktop.ini",
    "@eaDir",
    ".stfolder",
    ".Trashes",
    "__MACOSX",
    "*.part",
    "*.tmp",
    "*.crdownload",
    "~$*",
)
"""Names that are never photos: dotfiles and the litter of macOS, Windows, Synology, Syncthing, browsers and Office.

``.*`` alone covers several of them; they are listed anyway so the list reads as the documentation of what is skipped.
"""
