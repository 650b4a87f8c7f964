"""The pictures of an image: ``/original``, ``/output`` (the files themselves), ``/preview`` (before and after side
by side, a downscaled JPEG) and ``/heatmap`` (the analyser's degradation map as a PNG).

Previews and heatmaps are drawn on demand and cached under ``work_dir/api-cache`` by a key made of the files'
identities and the options, so a reprocessed output gets a new preview and a heatmap outlives its original
(heatmaps are keyed by the original's content hash). Files are only ever the ones recorded for the image, inside
its inbox's configured folders.
"""

from __future__ import annotations

import mimetypes
from pathlib import Path
from typing import Any

from flask import Blueprint, Response, send_file

from core.imageio import ImageError, ImageTooLarge
from daemon.api.errors import Problem
from daemon.api.files import RenderCache, fingerprint, original_file, output_file
from daemon.api.images import IMAGE_ID, load
from daemon.api.params import Field, parse_query
from daemon.api.render import HEATMAP_MAPS, TooLarge, heatmap, side_by_side, thumbnail
from daemon.api.spec import Operation, Reply
from daemon.api.state import app_state

DEFAULT_SIZE = 1024
MAX_SIZE = 4096

SIZE = Field(
    "size", "integer", "Longest side of each half, in pixels.", minimum=16, maximum=MAX_SIZE, default=DEFAULT_SIZE
)
PREVIEW_FIELDS = (SIZE,)
HEATMAP_FIELDS = (
    Field(
        "map",
        "string",
        "Which map: damage (what the blender acts on), noise, blur or blockiness.",
        enum=HEATMAP_MAPS,
        default="damage",
    ),
    Field("overlay", "boolean", "Draw over a grey copy of the photo (true) or the map alone (false).", default=True),
    Field("size", "integer", "Longest side in pixels.", minimum=16, maximum=MAX_SIZE, default=DEFAULT_SIZE),
)

_BINARY = "application/octet-stream"


def _file_operation(kind: str, summary: str) -> Operation:
    return Operation(
        "GET",
        f"/api/v1/images/{{image_id}}/{kind}",
        f"getImage{kind.capitalize()}",
        summary,
        "images",
        path_params=(IMAGE_ID,),
        responses={200: Reply("The file, as stored (Range and conditional requests work).", None, "image/*")},
        errors=(404,),
    )


OPERATIONS = (
    _file_operation("original", "The original file (where it is kept or archived)"),
    _file_operation("output", "The enhanced file"),
    Operation(
        "GET",
        "/api/v1/images/{image_id}/preview",
        "getImagePreview",
        "Before and after side by side, downscaled",
        "images",
        description="Only the enhanced half when the original is gone.",
        path_params=(IMAGE_ID,),
        query=PREVIEW_FIELDS,
        responses={200: Reply("A JPEG.", None, "image/jpeg")},
        errors=(400, 404, 422),
    ),
    Operation(
        "GET",
        "/api/v1/images/{image_id}/heatmap",
        "getImageHeatmap",
        "The analyser's degradation map of the original",
        "images",
        description="Computed from the original on first request and cached by its content hash, so it stays "
        "available after the original is deleted. 503 when this build has no analyser.",
        path_params=(IMAGE_ID,),
        query=HEATMAP_FIELDS,
        responses={200: Reply("A PNG.", None, "image/png")},
        errors=(400, 404, 422, 503),
    ),
)


def blueprint() -> Blueprint:
    bp = Blueprint("media", __name__, url_prefix="/api/v1/images")

    @bp.get("/<int:image_id>/original")
    def original(image_id: int) -> Response:
        image = _image(image_id)
        path = original_file(app_state().context.settings, image)
        if path is None:
            raise Problem(404, _gone(image, "original"))
        return _send(path, Path(image.original_location or path).name)

    @bp.get("/<int:image_id>/output")
    def output(image_id: int) -> Response:
        image = _image(image_id)
        path = output_file(app_state().context.settings, image)
        if path is None:
            raise Problem(404, _gone(image, "output"))
        return _send(path, Path(image.output_path or path).name)

    @bp.get("/<int:image_id>/preview")
    def preview(image_id: int) -> Response:
        values = parse_query(PREVIEW_FIELDS)
        context = app_state().context
        image = _image(image_id)
        after = output_file(context.settings, image)
        if after is None:
            raise Problem(404, _gone(image, "output") + "; a preview needs the enhanced file")
        before = original_file(context.settings, image)
        cache = RenderCache(context.settings.work_dir)
        key = fingerprint("preview", before, after, values["size"])
        cached = cache.get("previews", key, "jpg")
        if cached is None:
            limit = _max_pixels()
            try:
                data = side_by_side(
                    thumbnail(before, values["size"], limit) if before is not None else None,
                    thumbnail(after, values["size"], limit),
                )
            except TooLarge as exc:
                raise Problem(422, f"image {image_id} is too large to preview: {exc}") from None
            except (OSError, ValueError, ImageError) as exc:
                raise Problem(422, f"image {image_id} cannot be decoded for a preview: {exc}") from None
            cached = cache.put("previews", key, "jpg", data)
        return _send(cached, f"{image_id}-preview.jpg", "image/jpeg")

    @bp.get("/<int:image_id>/heatmap")
    def heatmap_png(image_id: int) -> Response:
        values = parse_query(HEATMAP_FIELDS)
        context = app_state().context
        image = _image(image_id)
        source = original_file(context.settings, image)
        identity: Any = image.content_hash or source
        if identity is None:
            raise Problem(404, _gone(image, "original") + "; the heatmap is computed from it")
        cache = RenderCache(context.settings.work_dir)
        key = fingerprint("heatmap", identity, values["map"], values["overlay"], values["size"])
        cached = cache.get("heatmaps", key, "png")
        if cached is None:
            if source is None:
                raise Problem(404, _gone(image, "original") + "; the heatmap is computed from it")
            analyse = _analyser()
            try:
                data = heatmap(source, analyse, values["map"], values["overlay"], values["size"], _max_pixels())
            except ImageTooLarge as exc:
                raise Problem(422, f"image {image_id} is too large to analyse here: {exc}") from None
            except (OSError, ValueError, ImageError) as exc:
                raise Problem(422, f"image {image_id} cannot be analysed: {exc}") from None
            cached = cache.put("heatmaps", key, "png", data)
        return _send(cached, f"{image_id}-heatmap-{values['map']}.png", "image/png")

    return bp


def _image(image_id: int) -> Any:
    with app_state().read_sessions() as session:
        return load(session, image_id)


def _send(path: Path, name: str, mimetype: str | None = None) -> Response:
    mimetype = mimetype or mimetypes.guess_type(name)[0] or _BINARY
    return send_file(path, mimetype=mimetype, download_name=name, conditional=True, etag=True, max_age=0)


def _gone(image: Any, what: str) -> str:
    """Why a file cannot be served, in words an admin can act on."""
    if what == "output":
        if image.output_path is None:
            return f"image {image.id} has no output (state {image.state.value})"
        if image.state.value == "deleted":
            return f"the output of image {image.id} was deleted by retention"
        return f"the output of image {image.id} is missing on disk or outside the configured folders"
    if image.original_deleted_at is not None:
        return f"the original of image {image.id} was deleted at {image.original_deleted_at.isoformat()}"
    return f"the original of image {image.id} is missing on disk or outside the configured folders"


def _max_pixels() -> int:
    return int(app_state().context.settings.worker.max_megapixels * 1_000_000)


def _analyser() -> Any:
    analyse = app_state().context.analyse
    if analyse is not None:
        return analyse
    try:
        from core.analysis import analyze
    except ImportError:
        raise Problem(503, "the analyser (core.analysis.analyze) is not available in this build") from None
    return analyze
