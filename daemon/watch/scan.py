"""Listing an inbox (or one folder of it): the startup scan, the periodic rescan and folders that appear at once.

Ignored folders are pruned while walking, so ``@eaDir`` or ``.Trashes`` with thousands of files cost nothing.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator
from pathlib import Path

from daemon.watch.ignore import IgnoreRules

logger = logging.getLogger(__name__)


def iter_candidates(
    root: Path,
    rules: IgnoreRules,
    start: Path | None = None,
    on_error: Callable[[OSError], None] | None = None,
) -> Iterator[Path]:
    """Yield the files below ``start`` (default: ``root``) that ``rules`` accept, relative rules applied to ``root``.

    Symlinked folders are not followed (they could loop or leave the inbox); unreadable folders are skipped and passed
    to ``on_error`` (the listing is then incomplete; the next rescan tries again).
    """
    top = root if start is None else start
    if top != root:
        try:
            relative_top = top.relative_to(root)
        except ValueError:
            return
        if rules.ignore_reason(relative_top) is not None:
            return

    def walk_error(exc: OSError) -> None:
        logger.debug("cannot list %s: %s", exc.filename, exc)
        if on_error is not None:
            on_error(exc)

    for dirpath, dirnames, filenames in os.walk(top, onerror=walk_error):
        here = Path(dirpath)
        dirnames[:] = [d for d in dirnames if rules.ignore_reason((here / d).relative_to(root)) is None]
        for filename in filenames:
            path = here / filename
            if rules.accepts(path.relative_to(root)):
                yield path
