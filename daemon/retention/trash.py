"""Moving files into the trash, putting them back, and purging it.

The trash is ``data_dir/trash/<run stamp>/<inbox>/<kind>/<path below its folder>``: one folder per run, named by
its UTC start time, so purging is a matter of comparing names with the clock (no mtimes, which moves preserve) and
nothing retention did not create is ever removed from there. A move is a rename when the trash is on the same
filesystem, else a copy to a hidden temporary name, fsync, rename, then unlink of the source.
"""

from __future__ import annotations

import errno
import logging
import os
import re
import shutil
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from core.atomicfile import temp_path

log = logging.getLogger(__name__)

STAMP_FORMAT = "%Y%m%dT%H%M%SZ"
_STAMP = re.compile(r"(\d{8}T\d{6}Z)(?:-\d+)?")


@dataclass(frozen=True)
class PurgeResult:
    folders: tuple[str, ...]
    files: int
    bytes: int


def run_folder(trash_dir: Path, started_at: datetime) -> Path:
    """A new, not yet existing folder for one run (``-N`` added when two runs start in the same second)."""
    stamp = started_at.astimezone(UTC).strftime(STAMP_FORMAT)
    candidate, n = trash_dir / stamp, 1
    while candidate.exists():
        candidate, n = trash_dir / f"{stamp}-{n}", n + 1
    return candidate


def move_to_trash(path: Path, target: Path) -> Path | None:
    """Move ``path`` to ``target`` (a free name is chosen if taken); ``None`` when ``path`` is already gone."""
    target.parent.mkdir(parents=True, exist_ok=True)
    target = _free_name(target)
    try:
        os.rename(path, target)
    except FileNotFoundError:
        return None
    except OSError as exc:
        if exc.errno != errno.EXDEV:
            raise
        try:
            return _copy_across(path, target)
        except FileNotFoundError:
            return None
    return target


def restore(trashed: Path, original: Path) -> bool:
    """Put a trashed file back where it was, unless something took its place meanwhile (then it stays trashed)."""
    if original.exists():
        log.warning("not restoring %s: %s exists again", trashed, original)
        return False
    try:
        os.rename(trashed, original)
    except OSError as exc:
        if exc.errno != errno.EXDEV:
            log.warning("could not restore %s to %s: %s", trashed, original, exc)
            return False
        _copy_across(trashed, original)
    return True


def delete_now(path: Path) -> bool:
    """Unlink (``trash_days = 0``); False when already gone."""
    try:
        path.unlink()
    except FileNotFoundError:
        return False
    return True


def purge(trash_dir: Path, now: datetime, trash_days: float, *, dry_run: bool = False) -> PurgeResult:
    """Remove run folders older than ``trash_days``; anything not named like a run folder is left alone."""
    if not trash_dir.is_dir():
        return PurgeResult((), 0, 0)
    cutoff = now - timedelta(days=trash_days)
    folders: list[str] = []
    files = size = 0
    for child in sorted(trash_dir.iterdir()):
        match = _STAMP.fullmatch(child.name)
        if match is None or child.is_symlink() or not child.is_dir():
            continue
        started = datetime.strptime(match.group(1), STAMP_FORMAT).replace(tzinfo=UTC)
        if started >= cutoff:
            continue
        for entry in child.rglob("*"):
            if entry.is_file() and not entry.is_symlink():
                files += 1
                size += entry.stat().st_size
        folders.append(str(child))
        if not dry_run:
            shutil.rmtree(child)
    return PurgeResult(tuple(folders), files, size)


def _free_name(target: Path) -> Path:
    if not target.exists():
        return target
    n = 1
    while True:
        candidate = target.with_name(f"{target.stem}-{n}{target.suffix}")
        if not candidate.exists():
            return candidate
        n += 1


def _copy_across(source: Path, target: Path) -> Path:
    """Copy across filesystems without ever leaving a partial file under the final name, then unlink the source."""
    temporary = temp_path(target)
    try:
        shutil.copy2(source, temporary)
        with open(temporary, "rb") as stream:
            os.fsync(stream.fileno())
        os.rename(temporary, target)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    source.unlink()
    return target
