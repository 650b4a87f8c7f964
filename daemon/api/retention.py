"""``GET``/``PUT /api/v1/retention`` (the per-inbox policies) and ``POST /api/v1/retention/run`` (now, or a dry
run that lists exactly what a real run would delete)."""

from __future__ import annotations

from typing import Any

from flask import Blueprint

from daemon.api.errors import Problem
from daemon.api.params import Choices, Field, object_schema, parse_json, parse_json_value
from daemon.api.spec import Operation, Reply, ref
from daemon.api.state import app_state
from daemon.retention import POLICY_KEYS, PolicyError, RetentionBusy
from daemon.retention.policy import MAX_DAYS, MAX_DISK_GB

_POLICY_OVERRIDE = tuple(
    Field(
        key,
        "number",
        f"{key}: a number, or null for forever / no ceiling; absent keeps the configured value.",
        minimum=0,
        maximum=MAX_DISK_GB if key == "max_disk_gb" else MAX_DAYS,
        nullable=True,
    )
    for key in POLICY_KEYS
)

RUN_FIELDS = (Field("dry_run", "boolean", "true: only report what would be deleted.", required=True),)


def _put_schema(choices: Choices) -> dict[str, Any]:
    """Overrides per configured inbox (other names are refused)."""
    policy = object_schema(_POLICY_OVERRIDE)
    policy["properties"]["max_disk_gb"]["exclusiveMinimum"] = 0
    del policy["properties"]["max_disk_gb"]["minimum"]
    inboxes = {
        "type": "object",
        "description": "Inbox name → overrides. Replaces every earlier override.",
        "additionalProperties": False,
        "properties": {name: policy for name in choices.get("inboxes", ())},
    }
    return {"type": "object", "additionalProperties": False, "properties": {"inboxes": inboxes}}


OPERATIONS = (
    Operation(
        "GET",
        "/api/v1/retention",
        "getRetention",
        "Retention policies: configured, overridden and effective, per inbox",
        "retention",
        responses={200: Reply("The policies.", ref("RetentionPolicies"))},
    ),
    Operation(
        "PUT",
        "/api/v1/retention",
        "putRetention",
        "Override retention policies per inbox",
        "retention",
        description="Days may be fractional; null keeps files forever (for max_disk_gb: no ceiling).",
        body_schema=_put_schema,
        body_required=True,
        responses={200: Reply("The policies now in force.", ref("RetentionPolicies"))},
        errors=(400, 415, 422),
    ),
    Operation(
        "POST",
        "/api/v1/retention/run",
        "runRetention",
        "Apply retention now (or list what it would delete)",
        "retention",
        description="Files go to the trash (purged after trash_days); rows are kept as `deleted`. 409 while "
        "another run is in progress.",
        body=RUN_FIELDS,
        body_required=True,
        responses={200: Reply("What was (or would be) deleted.", ref("RetentionReport"))},
        errors=(400, 409, 415, 422),
    ),
)


def blueprint() -> Blueprint:
    bp = Blueprint("retention", __name__, url_prefix="/api/v1/retention")

    @bp.get("")
    def get_policies() -> dict[str, Any]:
        return app_state().context.retention.policies()

    @bp.put("")
    def put_policies() -> dict[str, Any]:
        document = parse_json_value(body_required=True)
        try:
            return app_state().context.retention.set_policies(document)
        except PolicyError as exc:
            raise Problem(422, f"invalid retention policy: {exc}", errors=list(exc.problems)) from None

    @bp.post("/run")
    def run() -> dict[str, Any]:
        values = parse_json(RUN_FIELDS, body_required=True)
        try:
            report = app_state().context.retention.run(dry_run=values["dry_run"])
        except RetentionBusy as exc:
            raise Problem(409, str(exc)) from None
        return report.as_dict()

    return bp
