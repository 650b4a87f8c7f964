"""The image filter shared by ``GET /api/v1/images`` (query string) and ``POST /api/v1/reprocess`` (JSON body).

Every score column has ``min_<score>`` and ``max_<score>`` (inclusive), applied to the ``phase`` scores
(``before`` by default); ``*_from`` dates are inclusive and ``*_to`` exclusive; several states mean any of them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import storage
from daemon.api.params import MAX_NUMBER, Field
from storage import SCORE_COLUMNS, ImageState, ScorePhase

STATES = tuple(state.value for state in ImageState)

FILTER_FIELDS: tuple[Field, ...] = (
    Field("state", "array", "Only images in these states (comma-separated or repeated).", enum=STATES, max_items=6),
    Field("inbox", "string", "Only images of this inbox (by name).", max_length=200),
    Field("phase", "string", "Which scores the score bounds apply to.", enum=("before", "after")),
    *(
        Field(f"{bound}_{name}", "number", f"{label} {name} ({phase_hint}).", minimum=-MAX_NUMBER, maximum=MAX_NUMBER)
        for name in SCORE_COLUMNS
        for bound, label, phase_hint in (("min", "Lowest", "inclusive"), ("max", "Highest", "inclusive"))
    ),
    Field("created_from", "datetime", "Discovered at or after (ISO 8601 with zone, or a date = 00:00 UTC)."),
    Field("created_to", "datetime", "Discovered before."),
    Field("finished_from", "datetime", "Finished at or after."),
    Field("finished_to", "datetime", "Finished before."),
)

FILTER_NAMES = frozenset(field.name for field in FILTER_FIELDS)


def image_filter(values: Mapping[str, Any]) -> storage.ImageFilter:
    """The storage filter for validated ``values`` (keys of :data:`FILTER_FIELDS`; others are ignored)."""
    mins = {name: values[f"min_{name}"] for name in SCORE_COLUMNS if f"min_{name}" in values}
    maxs = {name: values[f"max_{name}"] for name in SCORE_COLUMNS if f"max_{name}" in values}
    return storage.ImageFilter(
        states=tuple(ImageState(state) for state in values.get("state", ())),
        inbox=values.get("inbox"),
        phase=ScorePhase(values.get("phase", "before")),
        min_scores=mins,
        max_scores=maxs,
        created_from=values.get("created_from"),
        created_to=values.get("created_to"),
        finished_from=values.get("finished_from"),
        finished_to=values.get("finished_to"),
    )


def has_condition(values: Mapping[str, Any]) -> bool:
    """Whether ``values`` narrows the set at all (``phase`` alone does not)."""
    return any(name in values for name in FILTER_NAMES - {"phase"})
