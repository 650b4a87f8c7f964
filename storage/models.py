"""The schema: images, their scores, the audit trail of events, and a small key/value table.

Any change here needs a migration in ``storage/migrations/versions`` (a test compares both).
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any, ClassVar

from sqlalchemy import BigInteger, Float, ForeignKey, Index, Integer, MetaData, String, Text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from storage.types import JSONType, StrEnumType, UTCDateTime, utcnow


class ImageState(StrEnum):
    """Lifecycle of an image, stored as these strings."""

    QUEUED = "queued"
    PROCESSING = "processing"
    DONE = "done"
    FAILED = "failed"
    DUPLICATE = "duplicate"
    DELETED = "deleted"


class EventKind(StrEnum):
    """What an audit-trail event records."""

    DISCOVERED = "discovered"
    QUEUED = "queued"
    STARTED = "started"
    DONE = "done"
    FAILED = "failed"
    RETRIED = "retried"
    LEASE_EXPIRED = "lease_expired"
    DUPLICATE = "duplicate"
    REPROCESSED = "reprocessed"
    ARCHIVED = "archived"
    ORIGINAL_DELETED = "original_deleted"
    DELETED = "deleted"
    PAUSED = "paused"
    RESUMED = "resumed"
    RETENTION = "retention"


class ScorePhase(StrEnum):
    """Scores are measured on the original (``before``) and on the enhanced output (``after``)."""

    BEFORE = "before"
    AFTER = "after"


SCORE_COLUMNS: tuple[str, ...] = (
    "width",
    "height",
    "noise_sigma",
    "blur_sigma",
    "jpeg_quality",
    "contrast",
    "quality",
    "megapixels",
    "blockiness",
    "exposure",
    "clipped_shadows",
    "clipped_highlights",
)
"""Analyser keys with their own (filterable) column; any other key goes into ``Score.extra``."""

FILTER_INDEXED: tuple[str, ...] = ("quality", "noise_sigma", "blur_sigma", "jpeg_quality", "contrast")
"""Score columns with an index for range filters (the others filter too, by scanning the phase's rows)."""


NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}
"""Deterministic constraint names: SQLite migrations (batch mode) can only drop constraints that have a name."""


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map: ClassVar[dict[Any, Any]] = {datetime: UTCDateTime(), dict[str, Any]: JSONType}


class Image(Base):
    """One discovered file and everything done with it; rows are never deleted (``deleted`` keeps statistics)."""

    __tablename__ = "images"
    __table_args__ = (
        Index("ix_images_claim", "state", "next_attempt_at", "id"),
        Index("ix_images_lease", "state", "lease_expires_at"),
        Index("ix_images_identity", "content_hash", "model_version", "parameters_key"),
        Index("ix_images_inbox_state", "inbox", "state"),
        Index("ix_images_state_finished", "state", "finished_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    content_hash: Mapped[str | None] = mapped_column(String(64))
    """SHA-256 of the file's bytes, hex."""
    inbox: Mapped[str] = mapped_column(String(200))
    source_path: Mapped[str] = mapped_column(Text, index=True)
    """Absolute path where the file was discovered."""
    relative_path: Mapped[str] = mapped_column(Text)
    """Path inside the inbox (POSIX separators); outputs mirror it."""
    source_size: Mapped[int | None] = mapped_column(BigInteger)
    source_mtime_ns: Mapped[int | None] = mapped_column(BigInteger)
    """With ``source_path`` and ``source_size``: lets a rescan recognise a file it already knows without hashing."""
    output_path: Mapped[str | None] = mapped_column(Text, index=True)
    """Indexed: output names are checked against every image's (``storage.output_paths_in_use``)."""
    output_size: Mapped[int | None] = mapped_column(BigInteger)
    archive_path: Mapped[str | None] = mapped_column(Text)
    """Where the original was moved (archive, or the failed folder); ``None`` while it stays at ``source_path``."""
    original_deleted_at: Mapped[datetime | None]
    """When the original was removed (``originals = "delete"`` or retention); ``None`` while it exists."""
    format: Mapped[str | None] = mapped_column(String(16))
    width: Mapped[int | None] = mapped_column(Integer)
    height: Mapped[int | None] = mapped_column(Integer)
    state: Mapped[ImageState] = mapped_column(StrEnumType(ImageState, 16))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    """Number of times a worker claimed the image (a crash mid-batch counts too)."""
    error: Mapped[str | None] = mapped_column(Text)
    next_attempt_at: Mapped[datetime | None]
    """A queued image is claimable once this time has passed (retry backoff)."""
    lease_owner: Mapped[str | None] = mapped_column(String(200))
    lease_expires_at: Mapped[datetime | None]
    duplicate_of: Mapped[int | None] = mapped_column(ForeignKey("images.id"))
    model_version: Mapped[str | None] = mapped_column(String(200))
    parameters: Mapped[dict[str, Any]] = mapped_column(default=dict)
    parameters_key: Mapped[str] = mapped_column(String(64))
    """Hash of the canonical ``parameters`` JSON, so duplicates are found by an index instead of JSON equality."""
    timings: Mapped[dict[str, Any] | None]
    device: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(index=True, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]

    scores: Mapped[list[Score]] = relationship(
        back_populates="image", cascade="all, delete-orphan", lazy="selectin", order_by="Score.phase"
    )

    def __repr__(self) -> str:
        return f"<Image {self.id} {self.state.value if self.state else None} {self.relative_path!r}>"

    def score(self, phase: ScorePhase) -> Score | None:
        """The scores of one phase, if recorded."""
        return next((score for score in self.scores if score.phase == phase), None)

    @property
    def original_location(self) -> str | None:
        """Where the original is now, or ``None`` once it was deleted."""
        if self.original_deleted_at is not None:
            return None
        return self.archive_path or self.source_path


class Score(Base):
    """What the analyser measured on one phase of one image: a column per known key, the rest in ``extra``."""

    __tablename__ = "scores"
    __table_args__ = tuple(
        # (phase, score, image_id) covers a range filter without touching the table (see storage.listing)
        Index(f"ix_scores_{name}", "phase", name, "image_id")
        for name in FILTER_INDEXED
    )

    image_id: Mapped[int] = mapped_column(ForeignKey("images.id", ondelete="CASCADE"), primary_key=True)
    phase: Mapped[ScorePhase] = mapped_column(StrEnumType(ScorePhase, 8), primary_key=True)
    width: Mapped[int | None] = mapped_column(Integer)
    height: Mapped[int | None] = mapped_column(Integer)
    noise_sigma: Mapped[float | None] = mapped_column(Float)
    blur_sigma: Mapped[float | None] = mapped_column(Float)
    jpeg_quality: Mapped[int | None] = mapped_column(Integer)
    contrast: Mapped[float | None] = mapped_column(Float)
    quality: Mapped[float | None] = mapped_column(Float)
    megapixels: Mapped[float | None] = mapped_column(Float)
    blockiness: Mapped[float | None] = mapped_column(Float)
    exposure: Mapped[float | None] = mapped_column(Float)
    clipped_shadows: Mapped[float | None] = mapped_column(Float)
    clipped_highlights: Mapped[float | None] = mapped_column(Float)
    extra: Mapped[dict[str, Any] | None]

    image: Mapped[Image] = relationship(back_populates="scores")

    def as_dict(self) -> dict[str, Any]:
        """The analyser keys as one flat mapping (columns plus ``extra``)."""
        values = {name: getattr(self, name) for name in SCORE_COLUMNS}
        return {**(self.extra or {}), **values}


class Event(Base):
    """Append-only audit trail; ``image_id`` is empty for daemon-wide events (pause, retention runs)."""

    __tablename__ = "events"
    __table_args__ = (
        Index("ix_events_image", "image_id", "id"),
        Index("ix_events_kind_at", "kind", "at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    image_id: Mapped[int | None] = mapped_column(ForeignKey("images.id"))
    kind: Mapped[EventKind] = mapped_column(StrEnumType(EventKind, 32))
    at: Mapped[datetime] = mapped_column(index=True)
    detail: Mapped[dict[str, Any] | None]

    def __repr__(self) -> str:
        return f"<Event {self.id} {self.kind.value if self.kind else None} image={self.image_id}>"


class KeyValue(Base):
    """Small pieces of runtime state set through the API (queue paused, retention overrides)."""

    __tablename__ = "kv"

    key: Mapped[str] = mapped_column(String(100), primary_key=True)
    value: Mapped[Any] = mapped_column(JSONType)
    updated_at: Mapped[datetime]
