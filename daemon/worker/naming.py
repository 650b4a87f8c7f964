"""Where files go: outputs, archived and failed originals mirror the inbox's subfolders; collisions get ``-1``, ``-2``.

Pure path arithmetic (the callers decide what counts as taken), so every rule is testable without a disk.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from pathlib import Path, PurePosixPath

MAX_SUFFIX = 100_000
"""Give up looking for a free name after this many suffixes (a folder that full is a bug, not a photo library)."""

ERROR_NOTE_SUFFIX = ".error.txt"
"""``<name>.error.txt`` beside a failed original says why it failed (retention moves it with the file)."""


def mirrored(root: Path, relative: str, name: str | None = None) -> Path:
    """``root/<relative's folders>/<name or relative's name>``; refuses paths that would leave ``root``."""
    parts = PurePosixPath(relative).parts
    if not parts or PurePosixPath(relative).is_absolute() or any(part in ("..", ".") for part in parts):
        raise ValueError(f"not a relative path inside an inbox: {relative!r}")
    return root.joinpath(*parts[:-1]) / (name if name is not None else parts[-1])


def output_name(relative: str, extension: str) -> str:
    """The output's file name: the original's stem with the output format's extension (``a/b.jpeg`` -> ``b.jpg``)."""
    return PurePosixPath(relative).stem + extension


def candidates(base: Path) -> Iterator[Path]:
    """``base``, then ``<stem>-1<suffix>``, ``<stem>-2<suffix>`` ... in the same folder."""
    yield base
    stem, suffix = _split(base.name)
    for counter in range(1, MAX_SUFFIX):
        yield base.with_name(f"{stem}-{counter}{suffix}")


def choose_free(base: Path, taken: Callable[[Path], bool]) -> Path:
    """The first of :func:`candidates` that is not ``taken``."""
    for candidate in candidates(base):
        if not taken(candidate):
            return candidate
    raise FileExistsError(f"no free name for {base} after {MAX_SUFFIX} tries")


def is_candidate_of(path: Path, base: Path) -> bool:
    """Whether ``path`` is ``base`` or one of its suffixed variants (same folder)."""
    if path.parent != base.parent:
        return False
    if path.name == base.name:
        return True
    stem, suffix = _split(base.name)
    match = re.fullmatch(re.escape(stem) + r"-(\d+)" + re.escape(suffix), path.name)
    return match is not None


def error_note(path: Path) -> Path:
    """The ``.error.txt`` note that goes with a failed original."""
    return path.with_name(path.name + ERROR_NOTE_SUFFIX)


def _split(name: str) -> tuple[str, str]:
    """Stem and last suffix; a dotfile's leading dot is part of the stem."""
    path = PurePosixPath(name)
    return (path.stem, path.suffix) if path.suffix else (name, "")
