"""The loaded models: the configured one, loaded once at start-up, and models a profile names, loaded on first use.

Loading happens on the caller's thread (start-up, or the worker between batches), never at import.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import TYPE_CHECKING

from config import WorkerSettings

if TYPE_CHECKING:
    from core.engine import Engine, EngineSettings

log = logging.getLogger(__name__)

BUILTIN = "builtin"
"""The model name of the shipped weights (``[worker] model`` and profiles' ``model``)."""

MAX_EXTRA_ENGINES = 2
"""Profile models kept loaded besides the configured one; the least recently used is dropped beyond this."""


class ModelUnavailable(Exception):
    """A model a profile names cannot be loaded; the message says why."""


def engine_settings(worker: WorkerSettings, ensemble: int | None = None) -> EngineSettings:
    """The engine's settings for the ``[worker]`` table; ``tile = 0`` (auto) leaves the tile to the engine's device.
    ``ensemble`` (a profile's or a reprocess request's) replaces ``[worker] ensemble``."""
    from core.engine import EngineSettings

    tile = worker.tile or None
    return EngineSettings(
        device=worker.device.value,
        tile=tile,
        ensemble=ensemble or worker.ensemble,
        max_images_in_flight=max(16, 2 * worker.batch_size),
    )


def load_engine(model: str, worker: WorkerSettings, ensemble: int | None = None) -> Engine:
    """Load ``model`` (``builtin`` or a weights file) onto the configured device."""
    from core.engine import Engine
    from core.model_loader import load_model

    descriptor = load_model(None if model == BUILTIN else model)
    return Engine(descriptor, engine_settings(worker, ensemble))


def model_version(engine: Engine) -> str:
    """What is recorded with each image (and part of the duplicate key): ``<model name>@<version>``, plus
    ``+ensemble<N>`` when the engine averages N views, since that changes the output as a new model would."""
    views = f"+ensemble{engine.ensemble}" if engine.ensemble > 1 else ""
    return f"{engine.descriptor.name}@{engine.descriptor.version}{views}"


EngineKey = tuple[str, int]
"""(model name, ensemble views) of a cached engine."""


class Engines:
    """The configured engine plus a small cache of engines for other models or views (profiles, reprocess requests);
    safe to use from one worker thread at a time."""

    def __init__(
        self,
        default: Engine,
        *,
        default_model: str = BUILTIN,
        loader: Callable[[str, int], Engine] | None = None,
        max_extra: int = MAX_EXTRA_ENGINES,
    ) -> None:
        self.default = default
        self._default_model = default_model
        self._loader = loader
        self._max_extra = max_extra
        self._extra: OrderedDict[EngineKey, Engine] = OrderedDict()
        self._lock = threading.Lock()

    def key(self, model: str | None, ensemble: int | None = None) -> EngineKey | None:
        """The engine a row's ``model`` and ``ensemble`` parameters (None: the configured ones) ask for: None for the
        default engine, else (model, views), so rows spelling the same engine differently share it."""
        same_model = model in (None, "", self._default_model) or (model == BUILTIN and self._default_model == BUILTIN)
        if same_model and ensemble in (None, self.default.ensemble):
            return None
        return (model or self._default_model, ensemble or self.default.ensemble)

    def get(self, model: str | None, ensemble: int | None = None) -> Engine:
        """The engine for a row's ``model`` and ``ensemble`` parameters (None: the configured ones); raises
        :class:`ModelUnavailable`."""
        key = self.key(model, ensemble)
        if key is None:
            return self.default
        with self._lock:
            if key in self._extra:
                self._extra.move_to_end(key)
                return self._extra[key]
        name = key[0] if key[1] == 1 else f"{key[0]} with {key[1]} views"
        if self._loader is None:
            raise ModelUnavailable(f"model {name!r} is not loaded in this daemon")
        try:
            engine = self._loader(*key)
        except Exception as error:
            raise ModelUnavailable(f"model {name!r} cannot be loaded: {error}") from error
        log.info("loaded model %s (%s) for a profile or request", key[0], model_version(engine))
        with self._lock:
            self._extra[key] = engine
            while len(self._extra) > self._max_extra:
                dropped, _ = self._extra.popitem(last=False)
                log.info("unloaded model %s with %d view(s) (least recently used)", *dropped)
        return engine

    def all(self) -> list[Engine]:
        with self._lock:
            return [self.default, *self._extra.values()]
