"""What became of one claimed image, and how an error is judged: the file's fault for good, or worth another try.

Permanent failures are properties of the file (undecodable, unsupported, too large): retrying cannot help, so the
file goes to the failed folder with its reason. Everything else is transient (disk full, permission denied while a
copy is still running, the source missing for a moment, memory exhausted even after the engine split its work, an
internal error) and is retried with backoff up to the attempt limit, the original left where it is: a wrong
"transient" costs a few retries, a wrong "permanent" would move a good photo away.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from core.imageio import ImageError, ImageNotFound, ImageTooLarge, ImageWriteError


class OutcomeKind(StrEnum):
    """How the worker records an image it worked on."""

    DONE = "done"
    """Output written; recorded as ``done``, then the original is kept, archived or deleted."""
    RETRY = "retry"
    """A transient failure: queued again after a backoff (``failed`` once the attempts are used up)."""
    BAD_INPUT = "bad_input"
    """A permanent failure of the file itself: ``failed``, the file moved to the failed folder with a note."""
    FAILED = "failed"
    """A permanent failure that is not the file's fault (original gone, superseded, model unavailable): ``failed``,
    the file (if any) left where it is."""
    RELEASED = "released"
    """Not worked on (the worker is stopping): given back to the queue, the attempt not counted."""


@dataclass(frozen=True)
class Outcome:
    """The result of one image: its kind, a one-line reason for failures, and the pipeline's result when it ran."""

    image_id: int
    kind: OutcomeKind
    reason: str | None = None
    result: Any = None
    """A ``core.pipeline.EnhanceResult`` for DONE."""


def judge(error: BaseException) -> OutcomeKind:
    """BAD_INPUT for errors that are properties of the file, RETRY for everything else."""
    if isinstance(error, ImageWriteError | ImageNotFound):
        return OutcomeKind.RETRY
    if isinstance(error, ImageError):
        cause = error.__cause__
        if isinstance(cause, OSError) and cause.errno is not None:  # permission denied, EIO: the file system's
            return OutcomeKind.RETRY  # (Pillow's own OSErrors for damaged data carry no errno)
        if isinstance(error, ImageTooLarge) and isinstance(cause, MemoryError):  # "not enough memory" now
            return OutcomeKind.RETRY
        if "the file is empty" in str(error):  # it had content when it was discovered: being rewritten
            return OutcomeKind.RETRY
        return OutcomeKind.BAD_INPUT
    return OutcomeKind.RETRY


def one_line(error: BaseException) -> str:
    """The first line of an error's message (its type when it has none)."""
    lines = str(error).strip().splitlines()
    return lines[0] if lines else type(error).__name__
