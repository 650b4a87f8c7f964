"""Which paths in an inbox are never photos: pure rules over the path relative to the inbox root.

The rules look at names only; whether the content really is an image is decided later by content sniffing.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import PurePath

from daemon.watch import defaults


def normalize_extensions(extensions: Iterable[str]) -> frozenset[str]:
    """Lower-case extensions without the dot, so ``".JPG"`` and ``"jpg"`` mean the same."""
    normalized = frozenset(ext.strip().lower().lstrip(".") for ext in extensions)
    if "" in normalized:
        raise ValueError("an empty extension in the extension whitelist")
    return normalized


def _compile(patterns: Iterable[str]) -> re.Pattern[str] | None:
    """One case-insensitive regex for a set of globs: Windows and macOS users do not mind case."""
    parts = [fnmatch.translate(pattern) for pattern in patterns]
    return re.compile("|".join(parts), re.IGNORECASE) if parts else None


@dataclass(frozen=True)
class IgnoreRules:
    """Built-in ignore globs plus ``extra`` ones, and an extension whitelist.

    A glob without ``/`` is matched against every path component (so ``@eaDir`` hides a whole folder); a glob with
    ``/`` is matched against every leading part of the relative path (``drafts/old`` hides ``drafts/old/x.jpg``).
    Matching is case-insensitive.
    """

    extra: tuple[str, ...] = ()
    extensions: frozenset[str] = defaults.EXTENSIONS
    _name_re: re.Pattern[str] | None = field(init=False, repr=False, compare=False)
    _prefix_re: re.Pattern[str] | None = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        extra = tuple(self.extra)
        for pattern in extra:
            if not pattern.strip() or pattern.strip("/") == "":
                raise ValueError(f"ignore pattern {pattern!r} is empty")
        object.__setattr__(self, "extra", extra)
        object.__setattr__(self, "extensions", normalize_extensions(self.extensions))
        names = [*defaults.BUILTIN_IGNORES, *(p for p in extra if "/" not in p)]
        prefixes = [p.strip("/") for p in extra if "/" in p]
        object.__setattr__(self, "_name_re", _compile(names))
        object.__setattr__(self, "_prefix_re", _compile(prefixes))

    def ignored_name(self, name: str) -> bool:
        """Whether one path component (a file or folder name) is ignored."""
        return self._name_re is not None and self._name_re.match(name) is not None

    def ignore_reason(self, relative: PurePath) -> str | None:
        """Why ``relative`` (a file or folder below the inbox root) is ignored, or None when it is not."""
        parts = relative.parts
        if not parts or relative.is_absolute() or ".." in parts:
            return f"{relative} is not below the inbox root"
        for index, name in enumerate(parts):
            if self.ignored_name(name):
                return f"ignored name {name!r}"
            if self._prefix_re is not None:
                prefix = "/".join(parts[: index + 1])
                if self._prefix_re.match(prefix):
                    return f"ignored path {prefix!r}"
        return None

    def extension_allowed(self, name: str) -> bool:
        """Whether a file name has a whitelisted extension."""
        stem, dot, ext = name.rpartition(".")
        return bool(dot and stem) and ext.lower() in self.extensions

    def reason(self, relative: PurePath) -> str | None:
        """Why the file at ``relative`` is not handed on, or None when it is a candidate photo."""
        ignored = self.ignore_reason(relative)
        if ignored is not None:
            return ignored
        if not self.extension_allowed(relative.name):
            return f"extension of {relative.name!r} not in {sorted(self.extensions)}"
        return None

    def accepts(self, relative: PurePath) -> bool:
        """Whether the file at ``relative`` is a candidate photo (not ignored, whitelisted extension)."""
        return self.reason(relative) is None
