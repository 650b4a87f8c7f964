"""JSON Schemas (OpenAPI 3.1 components) of what the API returns; kept beside :mod:`daemon.api.serialize`."""

from __future__ import annotations

from typing import Any

from storage import SCORE_COLUMNS, EventKind, ImageState

_STR_OR_NULL = {"type": ["string", "null"]}
_TIME = {"type": "string", "format": "date-time"}
_TIME_OR_NULL = {"type": ["string", "null"], "format": "date-time"}
_INT_OR_NULL = {"type": ["integer", "null"]}
_OBJECT = {"type": "object"}
_STATES = [state.value for state in ImageState]
_KINDS = ["outputs", "originals", "failed"]


def _object(properties: dict[str, Any], required: list[str] | None = None) -> dict[str, Any]:
    return {"type": "object", "properties": properties, "required": list(properties) if required is None else required}


SCORES: dict[str, Any] = {
    "type": "object",
    "description": "Analyser keys (see `enhancerd analyze --json`); keys beyond the filterable columns may appear.",
    "properties": {name: {"type": ["number", "null"]} for name in SCORE_COLUMNS},
}

IMAGE = _object(
    {
        "id": {"type": "integer"},
        "state": {"type": "string", "enum": _STATES},
        "inbox": {"type": "string"},
        "source_path": {"type": "string"},
        "relative_path": {"type": "string"},
        "output_path": _STR_OR_NULL,
        "archive_path": _STR_OR_NULL,
        "original_path": {**_STR_OR_NULL, "description": "Where the original is now; null once deleted."},
        "original_deleted_at": _TIME_OR_NULL,
        "error": _STR_OR_NULL,
        "format": _STR_OR_NULL,
        "width": _INT_OR_NULL,
        "height": _INT_OR_NULL,
        "source_size": _INT_OR_NULL,
        "output_size": _INT_OR_NULL,
        "content_hash": _STR_OR_NULL,
        "duplicate_of": _INT_OR_NULL,
        "attempts": {"type": "integer"},
        "model_version": _STR_OR_NULL,
        "parameters": _OBJECT,
        "device": _STR_OR_NULL,
        "timings": {"type": ["object", "null"]},
        "created_at": _TIME,
        "updated_at": _TIME,
        "started_at": _TIME_OR_NULL,
        "finished_at": _TIME_OR_NULL,
        "next_attempt_at": _TIME_OR_NULL,
        "scores": _object(
            {
                "before": {"oneOf": [{"$ref": "#/components/schemas/Scores"}, {"type": "null"}]},
                "after": {"oneOf": [{"$ref": "#/components/schemas/Scores"}, {"type": "null"}]},
            }
        ),
        "links": {"type": "object", "additionalProperties": {"type": "string"}},
    }
)

IMAGE_PAGE = _object(
    {
        "items": {"type": "array", "items": {"$ref": "#/components/schemas/Image"}},
        "next_cursor": {**_STR_OR_NULL, "description": "Pass as `cursor` for the next page; null on the last."},
        "limit": {"type": "integer"},
    }
)

EVENT = _object(
    {
        "id": {"type": "integer"},
        "image_id": _INT_OR_NULL,
        "kind": {"type": "string", "enum": [kind.value for kind in EventKind]},
        "at": _TIME,
        "detail": {"type": ["object", "null"]},
    }
)

EVENT_PAGE = _object(
    {
        "items": {"type": "array", "items": {"$ref": "#/components/schemas/Event"}},
        "next_cursor": _STR_OR_NULL,
        "limit": {"type": "integer"},
    }
)

PROBLEM = {
    "type": "object",
    "description": "RFC 9457 problem details.",
    "properties": {
        "type": {"type": "string"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "instance": {"type": "string"},
        "errors": {"type": "array", "items": {"type": "string"}},
    },
    "required": ["title", "status", "detail"],
}

HEALTH = _object({"status": {"type": "string", "enum": ["ok"]}, "time": _TIME}, ["status"])

STATUS = _object(
    {
        "status": {"type": "string"},
        "as_of": {**_TIME, "description": "When the database numbers were read (they are cached for about 1 s)."},
        "queue": _object(
            {
                "counts": {
                    "type": "object",
                    "properties": {state: {"type": "integer"} for state in _STATES},
                    "required": _STATES,
                },
                "depth": {"type": "integer", "description": "queued + processing"},
                "paused": {"type": "boolean"},
                "oldest_queued_at": _TIME_OR_NULL,
            }
        ),
        "totals": _object({"processed": {"type": "integer"}, "failed": {"type": "integer"}}),
        "throughput": _object(
            {
                "images_per_minute": {"type": "number"},
                "window_seconds": {"type": "number"},
                "processed_in_window": {"type": "integer"},
            }
        ),
        "device": _STR_OR_NULL,
        "precision": _STR_OR_NULL,
        "model_version": _STR_OR_NULL,
        "watchers": {"type": "object", "description": "Health per inbox, as the daemon reports it."},
        "worker": {"type": "object", "description": "busy / paused / batch in flight, as the daemon reports it."},
    },
    ["status", "as_of", "queue", "totals", "throughput", "device", "model_version", "watchers", "worker"],
)

QUEUE = _object(
    {
        "paused": {"type": "boolean"},
        "changed": {"type": "boolean", "description": "Whether this request changed the flag."},
    },
    ["paused"],
)

ACCEPTED = _object(
    {
        "id": {"type": "integer"},
        "state": {"type": "string", "enum": _STATES},
        "already_known": {"type": "boolean"},
        "inbox": {"type": "string"},
        "name": {"type": "string", "description": "The sanitised file name in the inbox."},
        "location": {"type": "string"},
    }
)

REPROCESSED = _object(
    {
        "id": {"type": "integer"},
        "state": {"type": "string", "enum": _STATES},
        "parameters": _OBJECT,
        "original_path": {"type": "string"},
    }
)

BULK_REPROCESSED = _object(
    {
        "dry_run": {"type": "boolean"},
        "matched": {
            "type": "integer",
            "description": "Images the filter matched (in reprocessable states unless `state` is given).",
        },
        "truncated": {"type": "boolean", "description": "More images matched than `limit`; send again for more."},
        "requeued": {"type": "array", "items": {"type": "integer"}},
        "skipped": {
            "type": "array",
            "items": _object({"id": {"type": "integer"}, "reason": {"type": "string"}}),
        },
    }
)

_POLICY = {
    "type": "object",
    "properties": {
        "outputs_days": {"type": ["number", "null"]},
        "originals_days": {"type": ["number", "null"]},
        "failed_days": {"type": ["number", "null"]},
        "max_disk_gb": {"type": ["number", "null"]},
    },
}

RETENTION_POLICIES = _object(
    {
        "schedule": {"type": "string"},
        "trash_days": {"type": "number"},
        "inboxes": {
            "type": "object",
            "additionalProperties": _object({"configured": _POLICY, "override": _POLICY, "effective": _POLICY}),
        },
    }
)

_ITEM = _object(
    {
        "image_id": {"type": "integer"},
        "inbox": {"type": "string"},
        "kind": {"type": "string", "enum": _KINDS},
        "path": {"type": "string"},
        "bytes": {"type": "integer"},
        "reason": {"type": "string"},
        "finished_at": _TIME,
        "missing": {"type": "boolean"},
        "sidecars": {"type": "array", "items": {"type": "string"}},
    }
)

RETENTION_REPORT = _object(
    {
        "dry_run": {"type": "boolean"},
        "started_at": _TIME,
        "finished_at": _TIME,
        "totals": {
            "type": "object",
            "additionalProperties": _object({"files": {"type": "integer"}, "bytes": {"type": "integer"}}),
        },
        "items": {"type": "array", "items": _ITEM},
        "skipped": {
            "type": "array",
            "items": _object(
                {
                    "image_id": {"type": "integer"},
                    "inbox": {"type": "string"},
                    "kind": {"type": "string", "enum": _KINDS},
                    "path": _STR_OR_NULL,
                    "reason": {"type": "string"},
                }
            ),
        },
        "trash_folder": _STR_OR_NULL,
        "purged": _object(
            {
                "folders": {"type": "array", "items": {"type": "string"}},
                "files": {"type": "integer"},
                "bytes": {"type": "integer"},
            }
        ),
    }
)

COMPONENTS: dict[str, Any] = {
    "Problem": PROBLEM,
    "Health": HEALTH,
    "Status": STATUS,
    "Scores": SCORES,
    "Image": IMAGE,
    "ImagePage": IMAGE_PAGE,
    "Event": EVENT,
    "EventPage": EVENT_PAGE,
    "Queue": QUEUE,
    "Accepted": ACCEPTED,
    "Reprocessed": REPROCESSED,
    "BulkReprocessed": BULK_REPROCESSED,
    "RetentionPolicies": RETENTION_POLICIES,
    "RetentionReport": RETENTION_REPORT,
}
