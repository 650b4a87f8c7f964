"""Which files the API may serve or read: only those recorded for an image, and only inside the configured folders
of its inbox (checked after resolving symlinks and ``..``). A client never names a path."""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Sequence
from pathlib import Path

from config import InboxSettings, Settings
from core.atomicfile import atomic_write_bytes
from daemon.retention.plan import containing_root
from storage import Image

log = logging.getLogger(__name__)

CACHE_FOLDER = "api-cache"
"""Below ``settings.work_dir``: rendered previews and heatmaps, named by a hash of what they were drawn from."""

CACHE_MAX_FILES = 2000
"""Per kind; the oldest tenth is dropped when the folder grows past this."""


def inbox_of(settings: Settings, image: Image) -> InboxSettings | None:
    try:
        return settings.inbox(image.inbox)
    except KeyError:
        return None


def output_roots(inbox: InboxSettings) -> tuple[Path, ...]:
    return (inbox.output,)


def original_roots(inbox: InboxSettings) -> tuple[Path, ...]:
    return tuple(dict.fromkeys((inbox.path, inbox.archive, inbox.failed)))


def checked_file(recorded: str | None, roots: Sequence[Path]) -> Path | None:
    """The real path of ``recorded`` when it is a regular file inside one of ``roots``; ``None`` otherwise."""
    if not recorded:
        return None
    if containing_root(recorded, tuple(roots)) is None:
        log.warning("refusing %s: outside %s", recorded, ", ".join(str(root) for root in roots))
        return None
    real = Path(os.path.realpath(recorded))
    return real if real.is_file() else None


def original_file(settings: Settings, image: Image) -> Path | None:
    inbox = inbox_of(settings, image)
    return checked_file(image.original_location, original_roots(inbox)) if inbox is not None else None


def output_file(settings: Settings, image: Image) -> Path | None:
    inbox = inbox_of(settings, image)
    return checked_file(image.output_path, output_roots(inbox)) if inbox is not None else None


def fingerprint(*parts: object) -> str:
    """A cache key: the files' identities (path, size, mtime) and the drawing options."""
    pieces: list[str] = []
    for part in parts:
        if isinstance(part, Path):
            try:
                st = part.stat()
                pieces.append(f"{part}:{st.st_size}:{st.st_mtime_ns}")
            except OSError:
                pieces.append(f"{part}:gone")
        else:
            pieces.append(repr(part))
    return hashlib.sha256("\x00".join(pieces).encode()).hexdigest()[:32]


class RenderCache:
    """Rendered pictures under ``work_dir/api-cache/<kind>/<key>.<ext>``, written atomically."""

    def __init__(self, work_dir: Path) -> None:
        self._root = work_dir / CACHE_FOLDER

    def path(self, kind: str, key: str, extension: str) -> Path:
        return self._root / kind / f"{key}.{extension}"

    def get(self, kind: str, key: str, extension: str) -> Path | None:
        path = self.path(kind, key, extension)
        return path if path.is_file() else None

    def put(self, kind: str, key: str, extension: str, data: bytes) -> Path:
        path = self.path(kind, key, extension)
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(path, data)
        self._prune(path.parent)
        return path

    def _prune(self, folder: Path) -> None:
        try:
            entries = [entry for entry in os.scandir(folder) if entry.is_file() and not entry.name.startswith(".")]
            if len(entries) <= CACHE_MAX_FILES:
                return
            entries.sort(key=lambda entry: entry.stat().st_mtime_ns)
            for entry in entries[: len(entries) // 10]:
                os.unlink(entry.path)
        except OSError as exc:  # a cache that cannot shrink is not worth failing a request for
            log.warning("could not prune %s: %s", folder, exc)
