"""File operations on originals and notes that never clobber and never leave half a file behind.

A move is ``link`` + ``unlink`` (``link`` refuses an existing target atomically, unlike ``rename``); across
filesystems it is a copy into a temporary file beside the target, fsync, ``link``, then the source is removed. A crash
in between leaves two names for the same content, never none: recovery recognises the copy by its content hash.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import logging
import os
import re
import shutil
import uuid
from collections.abc import Iterable
from pathlib import Path

from core.atomicfile import TEMP_NAME, atomic_write_text, fsync_folder, temp_path
from daemon.worker.naming import candidates, choose_free, error_note

log = logging.getLogger(__name__)

HASH_CHUNK = 1 << 20
_NO_LINKS = frozenset({errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EMLINK, errno.ENOSYS})


def move_to_free_name(source: Path, base: Path) -> Path:
    """Move ``source`` to ``base`` or its first free suffixed variant (``-1``, ``-2`` ...); returns where it went.

    Free means neither the file nor its ``.error.txt`` note exists.
    """
    target, linked = link_to_free_name(source, base)
    if linked:
        fsync_folder(target.parent)  # the new name is durable before the old one goes
        os.unlink(source)
        fsync_folder(source.parent)
    return target


def link_to_free_name(source: Path, base: Path) -> tuple[Path, bool]:
    """Give ``source`` a second name at ``base`` or its first free suffixed variant, never replacing a file.

    Returns ``(target, True)``: the caller fsyncs the target's folder, then removes ``source`` (several moves can
    share those fsyncs). Where a hard link is impossible (another filesystem, no link support) the move is completed
    here, durably, and ``(target, False)`` is returned.
    """
    base.parent.mkdir(parents=True, exist_ok=True)
    while True:
        target = choose_free(base, lambda p: os.path.lexists(p) or os.path.lexists(error_note(p)))
        try:
            return target, _link_no_clobber(source, target)
        except FileExistsError:
            continue  # somebody took the name between the check and the link: try the next one


def _link_no_clobber(source: Path, target: Path) -> bool:
    try:
        os.link(source, target)
    except OSError as error:
        if error.errno == errno.EEXIST:
            raise FileExistsError(str(target)) from error
        if error.errno == errno.EXDEV:
            _copy_then_remove(source, target)
            return False
        if error.errno not in _NO_LINKS:
            raise
        if target.exists():  # a filesystem without hard links: check, then rename (a tiny race, single writer)
            raise FileExistsError(str(target)) from error
        os.rename(source, target)
        fsync_folder(target.parent)
        fsync_folder(source.parent)
        return False
    return True


def _copy_then_remove(source: Path, target: Path) -> None:
    temporary = temp_path(target)
    try:
        with open(source, "rb") as reader, open(temporary, "xb") as writer:
            shutil.copyfileobj(reader, writer, HASH_CHUNK)
            writer.flush()
            os.fsync(writer.fileno())
        shutil.copystat(source, temporary)
        try:
            os.link(temporary, target)
        except OSError as error:
            if error.errno == errno.EEXIST:
                raise FileExistsError(str(target)) from error
            if error.errno not in _NO_LINKS:
                raise
            if target.exists():
                raise FileExistsError(str(target)) from error
            os.rename(temporary, target)
        fsync_folder(target.parent)
    finally:
        with contextlib.suppress(FileNotFoundError):
            temporary.unlink()
    os.unlink(source)
    fsync_folder(source.parent)


def write_note(path: Path, text: str) -> None:
    """Write a small text file atomically, replacing an older one (creates the folder)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, text)


def remove_quietly(path: Path) -> bool:
    """Delete a file if it is there; True when something was deleted."""
    try:
        path.unlink()
    except FileNotFoundError:
        return False
    fsync_folder(path.parent)
    return True


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        while chunk := stream.read(HASH_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def find_copy(base: Path, content_hash: str | None, size: int | None) -> Path | None:
    """A file at ``base`` or a suffixed variant with this content (a move a crash interrupted), if there is one."""
    if content_hash is None or not base.parent.is_dir():
        return None
    misses = 0
    for candidate in candidates(base):
        try:
            stat = candidate.stat()
        except FileNotFoundError:
            misses += 1
            if misses > 3:  # suffixes are handed out in order; a few gaps mean the end
                return None
            continue
        if (size is None or stat.st_size == size) and sha256_file(candidate) == content_hash:
            return candidate
    return None


UPLOAD_PART = re.compile(r"^\.upload-[0-9a-f]{32}\.part$")
"""An API upload being received: hidden, and ``*.part``, so every watcher ignores it until it is linked in place."""


def upload_part_path(folder: Path) -> Path:
    """A fresh name for an upload's partial file in ``folder``."""
    return folder / f".upload-{uuid.uuid4().hex}.part"


def remove_stale_uploads(folders: Iterable[Path]) -> list[Path]:
    """Delete uploads a crash interrupted (directly inside ``folders``); only at start-up, when none is running."""
    return _remove_leftovers(folders, UPLOAD_PART, "an upload interrupted by a stop")


def remove_temp_files(folders: Iterable[Path]) -> list[Path]:
    """Delete the temporary files of interrupted atomic writes directly inside ``folders``; returns them."""
    return _remove_leftovers(folders, TEMP_NAME, "the temporary file of an interrupted write")


def _remove_leftovers(folders: Iterable[Path], name: re.Pattern[str], what: str) -> list[Path]:
    """Delete the regular files directly inside ``folders`` whose names match ``name``; returns them."""
    removed: list[Path] = []
    for folder in dict.fromkeys(folders):
        try:
            entries = list(os.scandir(folder))
        except (FileNotFoundError, NotADirectoryError):
            continue
        for entry in entries:
            if name.match(entry.name) and entry.is_file(follow_symlinks=False):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(entry.path)
                    removed.append(Path(entry.path))
    for path in removed:
        log.info("removed %s: %s", what, path)
    return removed
