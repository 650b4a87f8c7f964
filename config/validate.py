"""Checks that need the whole, converted configuration: ranges, names, folder nesting, the API's exposure.

Each check returns problem lines instead of raising, so a user fixes every mistake in one go.
"""

from __future__ import annotations

import difflib
import ipaddress
import logging
import re
from pathlib import Path

from config import defaults as d
from config.settings import InboxSettings, OriginalsPolicy, Settings

_NAME = re.compile(r"[A-Za-z0-9._-]+")
_CRON_FIELD = re.compile(r"[0-9A-Za-z*/,\-?]+")
_LEVELS = ("CRITICAL", "ERROR", "WARNING", "INFO", "DEBUG")


def validate(settings: Settings) -> list[str]:
    """Every problem of a converted configuration, one line each (empty when it is usable)."""
    return [
        *_ranges(settings),
        *_names(settings),
        *_folders(settings),
        *_missing_inboxes(settings),
        *_exposure(settings),
    ]


def is_loopback(host: str) -> bool:
    """True for addresses only this machine can reach (``localhost``, 127.0.0.0/8, ``::1``)."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _ranges(s: Settings) -> list[str]:
    w, api, r = s.worker, s.api, s.retention
    checks: list[tuple[bool, str]] = [
        (0 <= api.port <= 65535, f"[api] port must be 0-65535, got {api.port}"),
        (api.max_upload_mb > 0, "[api] max_upload_mb must be positive"),
        (w.batch_size >= 1, "[worker] batch_size must be at least 1"),
        (w.max_wait_ms >= 0, "[worker] max_wait_ms must not be negative"),
        (w.decode_threads >= 1, "[worker] decode_threads must be at least 1"),
        (0 <= w.nice <= 19, f"[worker] nice must be 0-19, got {w.nice}"),
        (w.lease_seconds > 0, "[worker] lease_seconds must be positive"),
        (w.max_attempts >= 1, "[worker] max_attempts must be at least 1"),
        (w.backoff_base_seconds > 0, "[worker] backoff_base_seconds must be positive"),
        (
            w.backoff_max_seconds >= w.backoff_base_seconds,
            "[worker] backoff_max_seconds must be at least backoff_base_seconds",
        ),
        (
            w.tile == 0 or w.tile >= d.WORKER_TILE_MIN,
            f"[worker] tile must be 0 (auto: chosen per device) or at least {d.WORKER_TILE_MIN}",
        ),
        (
            w.ensemble in d.WORKER_ENSEMBLE_SIZES,
            f"[worker] ensemble must be one of {', '.join(map(str, d.WORKER_ENSEMBLE_SIZES))}, got {w.ensemble}",
        ),
        (w.max_megapixels > 0, "[worker] max_megapixels must be positive"),
        (s.watcher.settle_seconds >= 0, "[watcher] settle_seconds must not be negative"),
        (s.watcher.rescan_seconds >= 0, "[watcher] rescan_seconds must not be negative (0 = no rescan)"),
        (s.watcher.poll_interval_seconds > 0, "[watcher] poll_interval_seconds must be positive"),
        (r.trash_days >= 0, "[retention] trash_days must not be negative (0 = delete at once)"),
        (_is_cron(r.schedule), f"[retention] schedule must be a 5-field cron expression, got {r.schedule!r}"),
        (s.logging.level.upper() in _LEVELS, f"[logging] level must be one of {', '.join(_LEVELS)}"),
    ]
    problems = [message for ok, message in checks if not ok]
    for profile in s.profiles:
        if not 0.0 <= profile.strength <= 1.0:
            problems.append(f"[profiles.{profile.name}] strength must be between 0 and 1, got {profile.strength}")
        if not 1 <= profile.quality <= 100:
            problems.append(f"[profiles.{profile.name}] quality must be 1-100, got {profile.quality}")
        if profile.ensemble not in (0, *d.WORKER_ENSEMBLE_SIZES):
            problems.append(
                f"[profiles.{profile.name}] ensemble must be 0 (the worker's) or one of "
                f"{', '.join(map(str, d.WORKER_ENSEMBLE_SIZES))}, got {profile.ensemble}"
            )
    for inbox in s.inboxes:
        problems += _inbox_ranges(inbox)
    return problems


def _inbox_ranges(inbox: InboxSettings) -> list[str]:
    where = f"inbox '{inbox.name}'"
    problems = []
    if inbox.settle_seconds < 0:
        problems.append(f"{where}: settle_seconds must not be negative")
    if not inbox.extensions or not all(inbox.extensions):
        problems.append(f"{where}: extensions must be a non-empty list of non-empty names")
    policy = inbox.retention
    for key in ("outputs_days", "originals_days", "failed_days"):
        value = getattr(policy, key)
        if value is not None and value < 0:
            problems.append(f'{where}: retention {key} must not be negative ("forever" keeps files)')
    if policy.max_disk_gb is not None and policy.max_disk_gb <= 0:
        problems.append(f'{where}: retention max_disk_gb must be positive ("forever" = no ceiling)')
    return problems


def _is_cron(schedule: str) -> bool:
    fields = schedule.split()
    return len(fields) == 5 and all(_CRON_FIELD.fullmatch(field) for field in fields)


def _names(s: Settings) -> list[str]:
    problems = []
    seen: set[str] = set()
    profile_names = [profile.name for profile in s.profiles]
    if not s.inboxes:
        problems.append("no inbox is configured: add an [[inbox]] table (or leave 'inbox' out for the default)")
    for inbox in s.inboxes:
        if not _NAME.fullmatch(inbox.name):
            problems.append(f"inbox name {inbox.name!r} may only contain letters, digits, '.', '_' and '-'")
        if inbox.name in seen:
            problems.append(f'two inboxes are named {inbox.name!r}: give each [[inbox]] a distinct name = "..."')
        seen.add(inbox.name)
        if inbox.profile not in profile_names:
            close = difflib.get_close_matches(inbox.profile, profile_names, n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else f" (defined: {', '.join(profile_names)})"
            problems.append(f"inbox '{inbox.name}': unknown profile '{inbox.profile}'{hint}")
    for profile in s.profiles:
        if not _NAME.fullmatch(profile.name):
            problems.append(f"profile name {profile.name!r} may only contain letters, digits, '.', '_' and '-'")
    return problems


def _written_folders(s: Settings) -> list[tuple[str, Path]]:
    """Folders the daemon writes into, labelled for messages."""
    folders = [("data_dir", s.data_dir)]
    for inbox in s.inboxes:
        folders += [(f"inbox '{inbox.name}' output", inbox.output), (f"inbox '{inbox.name}' failed", inbox.failed)]
        if inbox.originals is OriginalsPolicy.ARCHIVE:
            folders.append((f"inbox '{inbox.name}' archive", inbox.archive))
    return folders


def _folders(s: Settings) -> list[str]:
    """Nothing the daemon writes may land in a watched inbox (it would be processed again), nor inboxes nest."""
    problems = []
    for inbox in s.inboxes:
        for label, folder in _written_folders(s):
            if folder.is_relative_to(inbox.path):
                problems.append(f"{label} {folder} is inside the watched inbox {inbox.path}; move it out")
            elif inbox.path.is_relative_to(folder) and label != "data_dir":
                problems.append(f"inbox '{inbox.name}' {inbox.path} is inside {label} {folder}; keep them apart")
        for other in s.inboxes:
            if other is not inbox and other.path.is_relative_to(inbox.path):
                problems.append(f"inbox '{other.name}' {other.path} is inside inbox '{inbox.name}' {inbox.path}")
    return list(dict.fromkeys(problems))


def _missing_inboxes(s: Settings) -> list[str]:
    """A missing inbox is created at start-up unless ``create = false`` (then it is refused here)."""
    problems = []
    for inbox in s.inboxes:
        if inbox.path.exists() and not inbox.path.is_dir():
            problems.append(f"inbox '{inbox.name}' {inbox.path} exists but is not a folder")
        elif not inbox.path.exists() and not inbox.create:
            problems.append(f"inbox '{inbox.name}' {inbox.path} does not exist (create = false: is the share mounted?)")
    return problems


def _exposure(s: Settings) -> list[str]:
    if s.api.token or is_loopback(s.api.host):
        return []
    return [
        f"[api] host {s.api.host} is reachable from other machines but no token is set: "
        "set [api] token, token_file or ENHANCERD_API_TOKEN, or listen on 127.0.0.1"
    ]


def log_level(settings: Settings) -> int:
    """The configured level as a :mod:`logging` constant."""
    return int(getattr(logging, settings.logging.level.upper()))
