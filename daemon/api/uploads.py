"""``POST /api/v1/images``: upload a photo into an inbox; it then takes the same path as a dropped file.

The body is received into a hidden ``.upload-*.part`` file in the inbox (a name every watcher ignores), checked
(size, content sniffing: 415 for anything that is not an accepted image), fsynced, then linked under its sanitised
name (``link`` fails instead of overwriting, so a taken name gets ``-1``, ``-2`` ...) and handed to
:meth:`daemon.intake.Intake.submit`. The watcher may see the file too; intake is idempotent for it.
"""

from __future__ import annotations

import errno
import os
import re
import shutil
import unicodedata
from pathlib import Path, PurePath
from typing import IO

from flask import Blueprint, Response, jsonify, request

from config import InboxSettings, Settings
from core.atomicfile import fsync_folder
from daemon.api.errors import Problem
from daemon.api.params import Field
from daemon.api.spec import Operation, Reply, ref
from daemon.api.state import app_state
from daemon.intake import IntakeRequest
from daemon.watch.ignore import IgnoreRules
from daemon.worker.files import upload_part_path

MIB = 1024 * 1024
MULTIPART_SLACK = 64 * 1024
"""Room for multipart headers and the form fields on top of ``max_upload_mb`` of file bytes."""

MAX_NAME_BYTES = 200
"""Longest stored file name (most filesystems allow 255 bytes; suffixes for collisions need room)."""

FORMAT_EXTENSIONS = {"JPEG": ".jpg", "PNG": ".png", "TIFF": ".tif", "WEBP": ".webp", "BMP": ".bmp", "GIF": ".gif"}
"""The extension given to an upload whose name does not already carry one of its sniffed format."""

_FORBIDDEN = re.compile(r'[\x00-\x1f\x7f<>:"/\\|?*]')

UPLOAD_FIELDS = (
    Field("file", "string", "The photo (binary).", required=True),
    Field("inbox", "string", "Inbox name; the first configured inbox when absent.", max_length=200, choices="inboxes"),
)

OPERATIONS = (
    Operation(
        "POST",
        "/api/v1/images",
        "uploadImage",
        "Upload a photo into an inbox",
        "images",
        description="Content decides: anything that is not a JPEG, PNG, TIFF, WebP, BMP or GIF the inbox accepts is "
        "refused (415). The name is sanitised (no folders, no hidden or control characters); a taken name gets a "
        "suffix. 202 with the image id: the photo is queued, or recognised as a duplicate.",
        multipart=UPLOAD_FIELDS,
        responses={202: Reply("Accepted.", ref("Accepted"), headers=("Location",))},
        errors=(400, 413, 415, 422, 503),
    ),
)


def max_content_length(settings: Settings) -> int:
    return int(settings.api.max_upload_mb * MIB) + MULTIPART_SLACK


def blueprint() -> Blueprint:
    bp = Blueprint("uploads", __name__, url_prefix="/api/v1")

    @bp.post("/images")
    def upload() -> Response:
        context = app_state().context
        if context.intake is None:
            raise Problem(503, "uploads are not available: this API runs without an intake")
        if request.mimetype != "multipart/form-data":
            raise Problem(415, "send the photo as multipart/form-data with a 'file' part")
        settings = context.settings
        if "file" in request.form:
            raise Problem(422, "'file' must be a file part (with a filename), not a plain form field")
        unknown = sorted(set(request.form) - {"inbox"} | set(request.files) - {"file"})
        if unknown:
            raise Problem(
                422, f"unknown form field(s): {', '.join(unknown)}", errors=[f"{n}: unknown" for n in unknown]
            )
        inbox = _inbox(settings, request.form.getlist("inbox"))
        parts = request.files.getlist("file")
        if len(parts) != 1:
            raise Problem(422, "exactly one 'file' part is required", errors=["file: required once"])
        limit = int(settings.api.max_upload_mb * MIB)
        path, size, name = _receive(inbox, parts[0].stream, parts[0].filename, limit)
        stat = path.stat()
        outcome = context.intake.submit(
            IntakeRequest(inbox=inbox.name, path=path, relative=Path(name), size=size, mtime_ns=stat.st_mtime_ns)
        )
        location = f"/api/v1/images/{outcome.image_id}"
        body = {
            "id": outcome.image_id,
            "state": outcome.state,
            "already_known": outcome.already_known,
            "inbox": inbox.name,
            "name": name,
            "location": location,
        }
        response = jsonify(body)
        response.status_code = 202
        response.headers["Location"] = location
        return response

    return bp


def _inbox(settings: Settings, names: list[str]) -> InboxSettings:
    if len(names) > 1:
        raise Problem(422, "give 'inbox' once", errors=["inbox: given more than once"])
    if not names:
        return settings.inboxes[0]
    try:
        return settings.inbox(names[0])
    except KeyError:
        known = ", ".join(inbox.name for inbox in settings.inboxes)
        raise Problem(
            422, f"unknown inbox {names[0][:100]!r} (configured: {known})", errors=["inbox: unknown"]
        ) from None


def _receive(inbox: InboxSettings, stream: IO[bytes], filename: str | None, limit: int) -> tuple[Path, int, str]:
    """Copy the upload into the inbox under a safe, free name; returns (path, size, name)."""
    from core.imageio import sniff_format

    inbox.path.mkdir(parents=True, exist_ok=True)
    partial = upload_part_path(inbox.path)
    try:
        size = _copy_limited(stream, partial, limit)
        if size == 0:
            raise Problem(422, "the uploaded file is empty", errors=["file: empty"])
        found = sniff_format(partial)
        if found is None:
            raise Problem(415, "the upload is not an image enhancerd reads (JPEG, PNG, TIFF, WebP, BMP or GIF)")
        name = safe_name(filename, found)
        rules = IgnoreRules(extra=inbox.ignore, extensions=frozenset(inbox.extensions))
        if not rules.extension_allowed(name):
            allowed = ", ".join(sorted(inbox.extensions))
            raise Problem(415, f"inbox '{inbox.name}' does not accept {found} files (extensions: {allowed})")
        reason = rules.reason(PurePath(name))
        if reason is not None:
            raise Problem(422, f"the name {name!r} would be ignored by the inbox ({reason}); rename the file")
        final = _link_free(partial, inbox.path, name)
    finally:
        partial.unlink(missing_ok=True)
    fsync_folder(inbox.path)
    return final, size, final.name


def _copy_limited(stream: IO[bytes], target: Path, limit: int) -> int:
    size = 0
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    with os.fdopen(fd, "wb") as out:
        while chunk := stream.read(1 << 20):
            size += len(chunk)
            if size > limit:
                raise Problem(413, f"the file is larger than the limit of {limit / MIB:g} MiB ([api] max_upload_mb)")
            out.write(chunk)
        out.flush()
        os.fsync(out.fileno())
    return size


def safe_name(filename: str | None, found: str) -> str:
    """A plain file name for an upload: the last path component, NFC, without control, reserved or leading
    dot/tilde characters, at most :data:`MAX_NAME_BYTES`, ending in an extension of the sniffed format."""
    from core.imageio.formats import format_for_suffix

    name = (filename or "").replace("\\", "/").rsplit("/", 1)[-1]
    name = _FORBIDDEN.sub("_", unicodedata.normalize("NFC", name)).strip()
    name = name.lstrip(".~$ ").rstrip(". ")
    stem, dot, suffix = name.rpartition(".")
    if not dot:
        stem, suffix = name, ""
    wanted = FORMAT_EXTENSIONS.get(found, "." + found.lower())
    if format_for_suffix(f"x.{suffix}") != found:
        stem, suffix = name, wanted.lstrip(".")
    stem = stem.strip(" .") or "upload"
    budget = MAX_NAME_BYTES - len(suffix.encode()) - 1
    while len(stem.encode()) > budget:
        stem = stem[:-1]
    return f"{stem}.{suffix}"


def _link_free(partial: Path, folder: Path, name: str) -> Path:
    """Give ``partial`` the name ``name`` (or ``stem-N.ext``) without ever replacing an existing file."""
    stem, suffix = os.path.splitext(name)
    for n in range(10_000):
        candidate = folder / (name if n == 0 else f"{stem}-{n}{suffix}")
        try:
            os.link(partial, candidate)
            return candidate
        except FileExistsError:
            continue
        except OSError as exc:
            if exc.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EXDEV):
                raise
            return _copy_free(partial, candidate)  # filesystems without hard links
    raise Problem(409, f"no free name for {name!r} in inbox folder after 10000 tries")


def _copy_free(partial: Path, candidate: Path) -> Path:
    fd = os.open(candidate, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)  # raises if taken, never overwrites
    with os.fdopen(fd, "wb") as out, partial.open("rb") as source:
        shutil.copyfileobj(source, out)
        out.flush()
        os.fsync(out.fileno())
    return candidate
