"""Column types that behave the same on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime
from enum import Enum
from typing import Any

from sqlalchemy import JSON, DateTime, Dialect, String
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.types import TypeDecorator, TypeEngine

JSONType: TypeEngine[Any] = JSON().with_variant(JSONB(), "postgresql")
"""JSON documents; JSONB on PostgreSQL so rows stay comparable (``json`` has no equality operator)."""


def utcnow() -> datetime:
    """The current time as an aware UTC datetime (the only clock storage uses when a caller passes none)."""
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every backend.

    PostgreSQL stores ``timestamptz``; SQLite has no time zones, so values are stored as naive UTC text (which also
    keeps string comparison in SQL chronological) and get their UTC ``tzinfo`` back when read. Naive input is refused:
    it is the usual source of off-by-hours bugs.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r}: storage needs timezone-aware UTC datetimes")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class StrEnumType(TypeDecorator[Enum]):
    """A ``str`` Enum stored as its value in a plain VARCHAR (no native enum, no CHECK).

    Adding a member later then needs no migration (SQLite cannot alter a CHECK constraint without rebuilding the
    table); the Enum class is the single source of allowed values.
    """

    impl = String
    cache_ok = True

    def __init__(self, enum_class: type[Enum], length: int = 32) -> None:
        super().__init__(length)
        self.enum_class = enum_class
        self._by_value: dict[str, Enum] = {member.value: member for member in enum_class}
        """Calling the Enum class costs ~3 µs a row; a dict lookup is what large listings can afford."""

    def process_bind_param(self, value: Enum | str | None, dialect: Dialect) -> str | None:
        if value is None:
            return None
        return self.enum_class(value).value

    def process_result_value(self, value: str | None, dialect: Dialect) -> Enum | None:
        if value is None:
            return None
        member = self._by_value.get(value)
        return member if member is not None else self.enum_class(value)  # an unknown value raises as before

    def copy(self, **kw: Any) -> StrEnumType:
        return StrEnumType(self.enum_class, self.impl.length)  # type: ignore[attr-defined]
