"""Persistence: SQLAlchemy models, sessions, migrations and queries (SQLAlchemy and Alembic only).

Typical use by the composition root::

    engine = create_engine(settings.database_url)
    migrate(engine)
    sessions = session_factory(engine)
    with sessions.begin() as session:      # one unit of work; commits on success
        batch = claim_batch(session, owner, limit=8, lease_seconds=300, now=utcnow())

Query functions take a Session and never commit; every state change also appends an event.
"""

from storage.control import (
    PAUSED_KEY,
    RETENTION_KEY,
    get_retention_overrides,
    get_value,
    is_paused,
    set_paused,
    set_retention_overrides,
    set_value,
)
from storage.engine import SQLITE_BUSY_TIMEOUT_MS, analyze, create_engine, session_factory, writer
from storage.errors import InvalidQuery, NotFound, StateConflict, StorageError
from storage.events import add_event, list_events
from storage.intake import NewImage, find_duplicate_target, find_known, images_at_path, intake, parameters_key
from storage.listing import (
    ImageFilter,
    StatusNumbers,
    count_by_state,
    count_images,
    image_ids,
    list_images,
    status_numbers,
)
from storage.migrate import current_revision, downgrade, head_revision, migrate
from storage.models import SCORE_COLUMNS, Base, Event, EventKind, Image, ImageState, KeyValue, Score, ScorePhase
from storage.outputs import (
    PENDING_OUTPUT_PREFIX,
    clear_pending_outputs,
    output_paths_in_use,
    pending_outputs,
    reserve_outputs,
)
from storage.pages import MAX_PAGE_SIZE, Page
from storage.queue import (
    REPROCESSABLE,
    claim_batch,
    get_image,
    mark_deleted,
    mark_done,
    mark_duplicate,
    mark_failed,
    mark_original_deleted,
    mark_original_moved,
    record_scores,
    release_claims,
    renew_leases,
    requeue_expired_leases,
    requeue_for_reprocess,
    retry_delay,
    schedule_retry,
)
from storage.recovery import expire_leases, originals_pending, processing_owners
from storage.retention import RetentionTarget, output_bytes, retention_candidates
from storage.rows import image_rows, list_image_rows
from storage.types import utcnow

__all__ = [
    "MAX_PAGE_SIZE",
    "PAUSED_KEY",
    "PENDING_OUTPUT_PREFIX",
    "REPROCESSABLE",
    "RETENTION_KEY",
    "SCORE_COLUMNS",
    "SQLITE_BUSY_TIMEOUT_MS",
    "Base",
    "Event",
    "EventKind",
    "Image",
    "ImageFilter",
    "ImageState",
    "InvalidQuery",
    "KeyValue",
    "NewImage",
    "NotFound",
    "Page",
    "RetentionTarget",
    "Score",
    "ScorePhase",
    "StateConflict",
    "StatusNumbers",
    "StorageError",
    "add_event",
    "analyze",
    "claim_batch",
    "clear_pending_outputs",
    "count_by_state",
    "count_images",
    "create_engine",
    "current_revision",
    "downgrade",
    "expire_leases",
    "find_duplicate_target",
    "find_known",
    "get_image",
    "get_retention_overrides",
    "get_value",
    "head_revision",
    "image_ids",
    "image_rows",
    "images_at_path",
    "intake",
    "is_paused",
    "list_events",
    "list_image_rows",
    "list_images",
    "mark_deleted",
    "mark_done",
    "mark_duplicate",
    "mark_failed",
    "mark_original_deleted",
    "mark_original_moved",
    "migrate",
    "originals_pending",
    "output_bytes",
    "output_paths_in_use",
    "parameters_key",
    "pending_outputs",
    "processing_owners",
    "record_scores",
    "release_claims",
    "renew_leases",
    "requeue_expired_leases",
    "requeue_for_reprocess",
    "reserve_outputs",
    "retention_candidates",
    "retry_delay",
    "schedule_retry",
    "session_factory",
    "set_paused",
    "set_retention_overrides",
    "set_value",
    "status_numbers",
    "utcnow",
    "writer",
]
