"""``enhancerd reprocess ID... [--strength F] [--model M] [--ensemble N]``: send images back to the queue, over
the API."""

from __future__ import annotations

import argparse
import json
import sys

from config.defaults import WORKER_ENSEMBLE_SIZES


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    from daemon.api.client import add_connection_arguments

    parser = subparsers.add_parser("reprocess", help="enhance images again (from their kept or archived original)")
    parser.add_argument("ids", nargs="+", type=int, metavar="ID", help="image ids (see GET /api/v1/images)")
    parser.add_argument("--strength", type=float, help="0 (unchanged) .. 1 (full effect); default: as before")
    parser.add_argument("--model", help="a model the daemon knows; default: as before")
    parser.add_argument(
        "--ensemble",
        type=int,
        choices=WORKER_ENSEMBLE_SIZES,
        metavar="N",
        help="views to average: 1, 2, 4 or 8; default: as before",
    )
    add_connection_arguments(parser)
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from daemon.api.client import ApiClient, ApiClientError

    body: dict[str, object] = {}
    if args.strength is not None:
        body["strength"] = args.strength
    if args.model is not None:
        body["model"] = args.model
    if args.ensemble is not None:
        body["ensemble"] = args.ensemble
    try:
        client = ApiClient.from_args(args)
    except ApiClientError as exc:
        print(f"enhancerd reprocess: {exc}", file=sys.stderr)
        return 1
    failures = 0
    for image_id in args.ids:
        try:
            answer = client.request("POST", f"/api/v1/images/{image_id}/reprocess", body)
        except ApiClientError as exc:
            print(f"enhancerd reprocess: image {image_id}: {exc}", file=sys.stderr)
            failures += 1
            if exc.status is None:  # the daemon is unreachable: the other ids would fail the same way
                return 1
            continue
        if args.json:
            print(json.dumps(answer))
        else:
            parameters = ", ".join(f"{key} {value}" for key, value in answer.get("parameters", {}).items())
            print(f"image {image_id}: {answer['state']} ({parameters})")
    return 1 if failures else 0
