"""The Flask application factory: no global app; the composition root passes an :class:`ApiContext`.

One blueprint per resource, listed in :data:`RESOURCES` (an explicit registry: no scanning). Each resource module
has ``blueprint()`` and ``OPERATIONS`` (its OpenAPI declarations); the app refuses to build when the two disagree,
so an undocumented route cannot ship.
"""

from __future__ import annotations

from types import ModuleType

from flask import Flask

from daemon.api import (
    events,
    health,
    images,
    media,
    metrics,
    openapi,
    queue,
    reprocess,
    retention,
    status,
    uploads,
)
from daemon.api.auth import install_auth
from daemon.api.context import ApiContext
from daemon.api.errors import register_error_handlers
from daemon.api.jsonio import OrjsonProvider
from daemon.api.spec import Operation
from daemon.api.state import EXTENSION, AppState, StaleWhileRevalidate, readonly_sessions

RESOURCES: tuple[ModuleType, ...] = (
    health,
    status,
    images,
    uploads,
    media,
    reprocess,
    queue,
    events,
    retention,
    metrics,
    openapi,
)


def operations() -> tuple[Operation, ...]:
    """Every declared operation of every resource."""
    return tuple(operation for module in RESOURCES for operation in module.OPERATIONS)


def choices(context: ApiContext) -> dict[str, tuple[str, ...]]:
    """The names the document lists as enums for this daemon."""
    return {
        "inboxes": tuple(inbox.name for inbox in context.settings.inboxes),
        "models": tuple(sorted(reprocess.known_models(context.settings))),
    }


def create_app(context: ApiContext) -> Flask:
    """A WSGI app over ``context``; building it starts nothing (no threads, no I/O)."""
    app = Flask("enhancerd.api", static_folder=None)
    app.json = OrjsonProvider(app)
    app.config.update(
        MAX_CONTENT_LENGTH=uploads.max_content_length(context.settings),
        JSON_SORT_KEYS=False,
        TRAP_HTTP_EXCEPTIONS=False,
        PROPAGATE_EXCEPTIONS=False,
    )
    app.json.sort_keys = False  # type: ignore[attr-defined]
    app.url_map.strict_slashes = False
    declared = operations()
    read = readonly_sessions(context)
    app.extensions[EXTENSION] = AppState(
        context=context,
        read_sessions=read,
        status=StaleWhileRevalidate(lambda: status.database_numbers(context, read), ttl=context.status_cache_seconds),
        openapi=openapi.build_document(declared, choices(context)),
    )
    for module in RESOURCES:
        app.register_blueprint(module.blueprint())
    register_error_handlers(app)
    install_auth(app, context.settings.api.token, {op.path for op in declared if op.public})
    return app
