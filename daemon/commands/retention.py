"""``enhancerd retention run [--dry-run]`` and ``enhancerd retention show``: retention over the API."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    from daemon.api.client import add_connection_arguments

    parser = subparsers.add_parser("retention", help="apply or inspect the retention policies")
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    run_parser = actions.add_parser("run", help="delete what the policies say now (files go to the trash)")
    run_parser.add_argument("--dry-run", action="store_true", help="only list what would be deleted")
    add_connection_arguments(run_parser)
    show = actions.add_parser("show", help="print the configured, overridden and effective policies")
    add_connection_arguments(show)
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from daemon.api.client import ApiClient, ApiClientError

    try:
        client = ApiClient.from_args(args)
        if args.action == "show":
            answer = client.request("GET", "/api/v1/retention")
        else:
            answer = client.request("POST", "/api/v1/retention/run", {"dry_run": bool(args.dry_run)})
    except ApiClientError as exc:
        print(f"enhancerd retention: {exc}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(answer, indent=2))
    elif args.action == "show":
        print(render_policies(answer))
    else:
        print(render_report(answer))
    return 0


def render_report(report: dict[str, Any]) -> str:
    verb = "would delete" if report["dry_run"] else "deleted"
    lines = []
    for item in report["items"]:
        note = " (already gone)" if item["missing"] else ""
        lines.append(f"{verb} {item['kind']:9} image {item['image_id']:>7} {item['path']}{note}")
    for item in report["skipped"]:
        lines.append(f"skipped {item['kind']:9} image {item['image_id']:>7} {item['path']}: {item['reason']}")
    totals = ", ".join(f"{kind} {t['files']} file(s) / {_size(t['bytes'])}" for kind, t in report["totals"].items())
    lines.append(f"{verb}: {totals}")
    purged = report["purged"]
    if purged["files"]:
        lines.append(f"{'would purge' if report['dry_run'] else 'purged'} {purged['files']} file(s) from the trash")
    return "\n".join(lines)


def render_policies(policies: dict[str, Any]) -> str:
    lines = [f"schedule {policies['schedule']!r}, trash kept {policies['trash_days']:g} day(s)"]
    for name, policy in policies["inboxes"].items():
        effective = ", ".join(
            f"{key} {'forever' if value is None else f'{value:g}'}" for key, value in policy["effective"].items()
        )
        overridden = f" (overridden: {', '.join(policy['override'])})" if policy["override"] else ""
        lines.append(f"{name}: {effective}{overridden}")
    return "\n".join(lines)


def _size(count: int) -> str:
    value = float(count)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} TiB"
