"""``enhancerd init [DIR]``: write a commented starter ``DIR/enhancerd.toml`` and create the folders it names."""

from __future__ import annotations

import argparse
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
    from core.atomicfile import atomic_write_text

    target = Path(args.dir) / CONFIG_NAME
    if target.exists() and not args.force:
        print(f"enhancerd init: {target} already exists (use --force to overwrite)", file=sys.stderr)
        return 1
    target.parent.mkdir(parents=True, exist_ok=True)
    text = starter_text(token=secrets.token_urlsafe(32))
    try:
        # Checked before it replaces anything; only the file decides the folders, not this shell's ENHANCERD_*.
        # Readable by the owner only: the file holds the API token.
        atomic_write_text(target, text, mode=0o600, check=lambda written: load_settings(written, environ={}))
    except ConfigError as exc:
        print(f"enhancerd init: the starter config does not load here: {exc}", file=sys.stderr)
        return 1
    settings = load_settings(target, environ={})
    created = ensure_folders(settings)
    print(f"wrote {target}")
    for folder in created:
        print(f"created {folder}")
    print(f"start with: enhancerd run --config {target}")
    return 0
