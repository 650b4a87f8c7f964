"""Replacing a file atomically: readers see the old content or the new, never half a file, even after a power cut.

The new content goes to a hidden temporary file in the target's own folder (a rename is only atomic within one
filesystem), is flushed and fsynced, renamed over the target, and the folder is fsynced so the rename itself is
durable. Any failure removes the temporary file and leaves the old target untouched.

Temporary names are ``.<name>.<12 hex>.tmp`` (:data:`TEMP_NAME`): the inbox watcher ignores them (a leading dot,
a ``.tmp`` ending) and the worker's start-up recovery deletes the ones a crash left behind. Every writer of
temporary files in enhancerd takes its names from :func:`temp_path`, so both rules keep matching.

Standard library only: used by ``core.imageio``, the pipeline and the daemon alike.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

TEMP_NAME = re.compile(r"^\..+\.[0-9a-f]{8,}\.tmp$")
"""Names of temporary files of atomic writes (``.<name>.<hex>.tmp``); only a crash leaves such a file behind."""

COPY_CHUNK = 1 << 20
"""Bytes per read when copying (large enough for throughput, small enough to never matter for memory)."""

FILE_MODE = 0o666
"""Permission bits asked for; the process umask then gives what any new file gets (``mkstemp`` would force 0600)."""


def temp_path(target: Path) -> Path:
    """A fresh temporary name beside ``target`` that matches :data:`TEMP_NAME`."""
    return target.with_name(f".{target.name}.{secrets.token_hex(6)}.tmp")


def fsync_folder(folder: Path) -> None:
    """Make a rename, link or unlink in ``folder`` durable; best effort (some platforms cannot open folders)."""
    with contextlib.suppress(OSError):
        descriptor = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
        try:
            os.fsync(descriptor)
        finally:
            os.close(descriptor)


def atomic_write(
    target: str | os.PathLike[str],
    write: Callable[[BinaryIO], object],
    *,
    mode: int = FILE_MODE,
    check: Callable[[Path], object] | None = None,
) -> Path:
    """Replace ``target`` with what ``write(stream)`` writes; returns ``target`` as a Path.

    ``check(temporary_path)``, when given, runs on the complete, fsynced temporary file before it replaces
    anything; raising there (like raising in ``write``) leaves the old file as it was. The folder must exist:
    creating it is the caller's decision. Exceptions propagate unchanged.
    """
    target = Path(target)
    temporary = temp_path(target)
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), mode)
    try:
        with os.fdopen(descriptor, "wb") as stream:
            write(stream)
            stream.flush()
            os.fsync(stream.fileno())
        if check is not None:
            check(temporary)
        os.replace(temporary, target)
    except BaseException:
        with contextlib.suppress(OSError):
            temporary.unlink()
        raise
    fsync_folder(target.parent)
    return target


def atomic_write_bytes(target: str | os.PathLike[str], data: bytes, *, mode: int = FILE_MODE) -> Path:
    """Replace ``target`` with ``data`` (see :func:`atomic_write`)."""
    return atomic_write(target, lambda stream: stream.write(data), mode=mode)


def atomic_write_text(
    target: str | os.PathLike[str],
    text: str,
    *,
    encoding: str = "utf-8",
    mode: int = FILE_MODE,
    check: Callable[[Path], object] | None = None,
) -> Path:
    """Replace ``target`` with ``text`` (see :func:`atomic_write`; newlines are written as given)."""
    data = text.encode(encoding)
    return atomic_write(target, lambda stream: stream.write(data), mode=mode, check=check)


def atomic_copy(source: str | os.PathLike[str], target: str | os.PathLike[str]) -> Path:
    """Replace ``target`` with a copy of ``source``'s bytes (not its metadata); creates the target's folder."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(source, "rb") as reader:
        return atomic_write(target, lambda writer: shutil.copyfileobj(reader, writer, COPY_CHUNK))
