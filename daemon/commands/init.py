"""``enhancerd init [DIR]``: write a commented starter ``DIR/enhancerd.toml`` and create the folders it names."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

CONFIG_NAME = "enhancerd.toml"
"""File name written into DIR (``enhancerd run --config DIR/enhancerd.toml`` reads it)."""


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("init", help="write a starter enhancerd.toml and create its folders")
    parser.add_argument(
        "dir", nargs="?", type=Path, default=Path("."), metavar="DIR", help="target folder (default: .)"
    )
    parser.add_argument("--force", action="store_true", help=f"overwrite an existing {CONFIG_NAME}")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    import secrets

    from config import ConfigError, ensure_folders, load_settings, starter_text

    target = Path(args.dir) / CONFIG_NAME
    if target.exists() and not args.force:
        print(f"enhancerd init: {target} already exists (use --force to overwrite)", file=sys.stderr)
        return 1
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = _write_private(target.with_name(f".{CONFIG_NAME}.tmp"), starter_text(token=secrets.token_urlsafe(32)))
    try:
        # Checked before it replaces anything; only the file decides the folders, not this shell's ENHANCERD_*.
        settings = load_settings(tmp, environ={})
    except ConfigError as exc:
        tmp.unlink()
        print(f"enhancerd init: the starter config does not load here: {exc}", file=sys.stderr)
        return 1
    os.replace(tmp, target)
    created = ensure_folders(settings)
    print(f"wrote {target}")
    for folder in created:
        print(f"created {folder}")
    print(f"start with: enhancerd run --config {target}")
    return 0


def _write_private(path: Path, text: str) -> Path:
    """Write durably, readable by the owner only: the file holds the API token."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())
    return path
