"""``enhancerd run [--config FILE] [--set KEY=VALUE ...]``: run the daemon until SIGTERM or SIGINT.

Without ``--config`` the embedded default is used: everything under ``./var`` (SQLite file, inbox, outbox, archive),
the API on 127.0.0.1:8750; that is what ``make run`` starts. ``--set`` overrides one key, written as a dotted path
(``api.port=9000``, ``inbox.0.polling=true``, ``profiles.default.strength=0.5``), over the file and the
``ENHANCERD_*`` environment. Exit status: 0 after a clean stop, 2 for configuration problems (one line each on
stderr), 1 when the daemon cannot start or a part of it died.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

CONFIG_ERROR = 2
START_ERROR = 1


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "run",
        help="run the daemon: watch the inboxes, enhance what lands there, serve the API",
        description="Run the enhancerd daemon in the foreground until SIGTERM or SIGINT.",
    )
    parser.add_argument(
        "--config", type=Path, default=None, metavar="FILE", help="TOML config file (default: the embedded one, ./var)"
    )
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config key, e.g. --set api.port=9000 --set inbox.0.polling=true (repeatable)",
    )
    parser.set_defaults(handler=run)


def parse_overrides(items: list[str]) -> tuple[dict[str, str], list[str]]:
    """``KEY=VALUE`` strings as a mapping, and one problem line per malformed item."""
    overrides: dict[str, str] = {}
    problems: list[str] = []
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            problems.append(f"--set {item!r}: expected KEY=VALUE, e.g. api.port=9000")
            continue
        overrides[key.strip()] = value
    return overrides, problems


def run(args: argparse.Namespace) -> int:
    from config import ConfigError, load_settings

    overrides, problems = parse_overrides(args.overrides)
    if problems:
        return _config_problems(problems)
    try:
        settings = load_settings(args.config, overrides=overrides)
    except ConfigError as error:
        return _config_problems(error.problems)

    from daemon.logging_setup import configure_logging

    configure_logging(settings.logging, verbose=bool(getattr(args, "verbose", False)))  # before imports log anything
    from daemon.service import Service, ServiceError

    service = Service(settings)
    try:
        service.start()
    except ServiceError as error:
        print(f"enhancerd run: {error}", file=sys.stderr)
        return error.code
    except KeyboardInterrupt:
        return 130
    return service.run_until_stopped()


def _config_problems(problems: list[str] | tuple[str, ...]) -> int:
    for problem in problems:
        print(f"enhancerd run: config: {problem}", file=sys.stderr)
    return CONFIG_ERROR
