"""``enhancerd status``: what the running daemon is doing, over its API."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    from daemon.api.client import add_connection_arguments

    parser = subparsers.add_parser("status", help="show the running daemon's queue, throughput and health")
    add_connection_arguments(parser)
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from daemon.api.client import ApiClient, ApiClientError

    try:
        status = ApiClient.from_args(args).request("GET", "/api/v1/status")
    except ApiClientError as exc:
        print(f"enhancerd status: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(status, indent=2) if args.json else render(status))
    return 0


def render(status: dict[str, Any]) -> str:
    """A few readable lines for a terminal."""
    queue, totals, throughput = status["queue"], status["totals"], status["throughput"]
    counts = ", ".join(f"{state} {n}" for state, n in queue["counts"].items())
    lines = [
        f"queue:      {'PAUSED, ' if queue['paused'] else ''}{counts}",
        f"processed:  {totals['processed']} ok, {totals['failed']} failed; "
        f"{throughput['images_per_minute']:.1f} images/min over the last {throughput['window_seconds']:.0f} s",
        f"model:      {status.get('model_version') or '?'} on {status.get('device') or '?'}"
        + (f" ({status['precision']})" if status.get("precision") else ""),
    ]
    worker = status.get("worker") or {}
    if worker:
        lines.append("worker:     " + ", ".join(f"{key} {value}" for key, value in worker.items()))
    for name, health in (status.get("watchers") or {}).items():
        lines.append(f"watcher:    {name}: {_words(health)}")
    return "\n".join(lines)


def _words(value: Any) -> str:
    if isinstance(value, dict):
        return ", ".join(f"{key} {item}" for key, item in value.items())
    return str(value)
