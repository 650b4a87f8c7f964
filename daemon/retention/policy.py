"""Effective retention policies: the config's per-inbox policy, overridden per key through ``PUT /api/v1/retention``.

Overrides are stored (``storage.set_retention_overrides``) as ``{"inboxes": {NAME: {KEY: days-or-null}}}``: a key
that is absent keeps the configured value, ``null`` means "forever" (``max_disk_gb``: no ceiling). Validation here
is the one gate, so a stored override is always usable; overrides of an inbox that left the config are ignored.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from typing import Any

from config import InboxSettings, RetentionPolicy, Settings

POLICY_KEYS: tuple[str, ...] = ("outputs_days", "originals_days", "failed_days", "max_disk_gb")
"""The per-inbox keys an override may set (the fields of :class:`config.RetentionPolicy`)."""

MAX_DAYS = 36_500.0
"""A hundred years: anything longer is a typo (or ``null``, which means forever)."""

MAX_DISK_GB = 1_000_000.0
"""A petabyte per inbox: larger ceilings are typos (``null`` means no ceiling)."""


class PolicyError(ValueError):
    """An override is malformed; ``problems`` has one line per mistake (the API answers 422)."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = tuple(problems)
        super().__init__("; ".join(problems))


def policy_dict(policy: RetentionPolicy) -> dict[str, float | None]:
    return {key: getattr(policy, key) for key in POLICY_KEYS}


def validate_overrides(settings: Settings, raw: Any) -> dict[str, Any]:
    """The normalised override document, or :class:`PolicyError` naming every problem."""
    if not isinstance(raw, Mapping):
        raise PolicyError(["the body must be a JSON object with an 'inboxes' object"])
    problems = [f"unknown field {key!r} (expected 'inboxes')" for key in raw if key != "inboxes"]
    inboxes = raw.get("inboxes", {})
    if not isinstance(inboxes, Mapping):
        raise PolicyError([*problems, "'inboxes' must be an object mapping inbox names to policies"])
    known = [inbox.name for inbox in settings.inboxes]
    normalised: dict[str, dict[str, float | None]] = {}
    for name, policy in inboxes.items():
        if name not in known:
            problems.append(f"unknown inbox {name!r} (configured: {', '.join(known)})")
            continue
        if not isinstance(policy, Mapping):
            problems.append(f"inboxes.{name} must be an object")
            continue
        normalised[name] = {}
        for key, value in policy.items():
            problem = _check_value(key, value)
            if problem:
                problems.append(f"inboxes.{name}.{problem}")
            else:
                normalised[name][key] = None if value is None else float(value)
    if problems:
        raise PolicyError(problems)
    return {"inboxes": normalised}


def _check_value(key: str, value: Any) -> str | None:
    if key not in POLICY_KEYS:
        return f"{key}: unknown key (expected one of {', '.join(POLICY_KEYS)})"
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return f"{key}: must be a number or null (forever), got {value!r}"
    if key == "max_disk_gb":
        if not 0 < value <= MAX_DISK_GB:
            return f"{key}: must be above 0 and at most {MAX_DISK_GB:g} (null = no ceiling), got {value}"
    elif not 0 <= value <= MAX_DAYS:
        return f"{key}: must be between 0 and {MAX_DAYS:g} days (null = forever), got {value}"
    return None


def effective_policy(inbox: InboxSettings, overrides: Mapping[str, Any]) -> RetentionPolicy:
    """The inbox's configured policy with its stored overrides applied (unknown or bad entries ignored)."""
    override = overrides.get("inboxes", {}).get(inbox.name, {}) if isinstance(overrides, Mapping) else {}
    if not isinstance(override, Mapping):
        return inbox.retention
    changes = {key: value for key, value in override.items() if key in POLICY_KEYS and _check_value(key, value) is None}
    return dataclasses.replace(inbox.retention, **changes)


def describe(settings: Settings, overrides: Mapping[str, Any]) -> dict[str, Any]:
    """The document ``GET /api/v1/retention`` returns: schedule, trash, and per inbox configured/override/effective."""
    stored = overrides.get("inboxes", {}) if isinstance(overrides, Mapping) else {}
    return {
        "schedule": settings.retention.schedule,
        "trash_days": settings.retention.trash_days,
        "inboxes": {
            inbox.name: {
                "configured": policy_dict(inbox.retention),
                "override": dict(stored.get(inbox.name, {})) if isinstance(stored.get(inbox.name), Mapping) else {},
                "effective": policy_dict(effective_policy(inbox, overrides)),
            }
            for inbox in settings.inboxes
        },
    }
