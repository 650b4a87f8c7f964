"""Errors storage raises on purpose, so callers (the worker, the API) can map them to outcomes or status codes."""

from __future__ import annotations

from collections.abc import Collection


class StorageError(Exception):
    """Base of the errors below."""


class NotFound(StorageError, LookupError):
    """No image has this id."""

    def __init__(self, image_id: int) -> None:
        super().__init__(f"image {image_id} does not exist")
        self.image_id = image_id


class StateConflict(StorageError):
    """A transition was refused: the row's state (or lease owner) changed under the caller; the API answers 409."""

    def __init__(self, image_id: int, state: str, allowed: Collection[str], detail: str = "") -> None:
        wanted = " or ".join(sorted(allowed))
        super().__init__(f"image {image_id} is {state}, expected {wanted}{detail}")
        self.image_id = image_id
        self.state = state


class InvalidQuery(StorageError, ValueError):
    """A filter, limit or cursor the caller passed is malformed (the API answers 400)."""
