"""Create the folders a configuration names: called by ``enhancerd run`` and ``enhancerd init``, never at import."""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from string import Template

from config.settings import Settings

STARTER_TEMPLATE = "starter.toml"
"""Package-data file of the commented starter configuration; ``${token}`` is replaced by a fresh secret."""


def ensure_folders(settings: Settings) -> list[Path]:
    """Create every missing folder of ``settings`` (inboxes included, see ``create``); return those created.

    Inboxes with ``create = false`` were already refused by validation when missing, so they exist here.
    """
    created = []
    for folder in settings.folders():
        if not folder.is_dir():
            folder.mkdir(parents=True, exist_ok=True)
            created.append(folder)
    return created


def starter_text(token: str) -> str:
    """The commented starter configuration with ``token`` filled in."""
    template = resources.files("config").joinpath(STARTER_TEMPLATE).read_text(encoding="utf-8")
    return Template(template).substitute(token=token)
