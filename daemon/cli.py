"""The ``enhancerd`` command line: an explicit registry of sub-commands (no scanning)."""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence

from core.runtime import configure_threading

# name -> module in daemon.commands; each module has add_parser(subparsers) and run(args) -> int.
COMMANDS: tuple[str, ...] = ("analyze", "enhance", "run", "init", "status", "reprocess", "retention")


def _available_commands() -> list[str]:
    return [name for name in COMMANDS if importlib.util.find_spec(f"daemon.commands.{name}") is not None]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="enhancerd", description="AI photo enhancer service")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in _available_commands():
        module = importlib.import_module(f"daemon.commands.{name}")
        module.add_parser(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    configure_threading()  # before any command imports torch or numpy: see core.runtime
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    try:
        return int(args.handler(args))
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
