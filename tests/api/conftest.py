"""API fixtures: settings and folders in ``tmp_path``, a migrated database (on ``db_url`` of ``tests/conftest.py``:
SQLite, and PostgreSQL when ``ENHANCERD_TEST_PG_URL`` is set), an :class:`ApiContext` with a fake clock and a fake
daemon status, the Flask test client, and a small library that puts real image files and rows in place."""

from __future__ import annotations

import io
import shutil
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient
from PIL import Image as PILImage
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

import storage
from config import Settings, ensure_folders, load_settings
from daemon.api.app import create_app
from daemon.api.context import ApiContext
from daemon.intake import Intake
from daemon.metrics import Metrics
from daemon.retention import RetentionRunner
from storage import Image, ImageState

TOKEN = "s3cret-test-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
START = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)

LIVE_STATUS: dict[str, Any] = {
    "device": "cpu",
    "precision": "fp32",
    "model_version": "test-1",
    "watchers": {"inbox": {"healthy": True, "mode": "inotify"}},
    "worker": {"busy": False, "paused": False, "batch_in_flight": 0},
}


class FakeClock:
    """An injectable, steppable UTC clock."""

    def __init__(self, now: datetime = START) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> datetime:
        self.now += timedelta(**delta)
        return self.now


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    engine = storage.create_engine(db_url)
    storage.migrate(engine)
    try:
        yield engine
    finally:
        engine.dispose()


@pytest.fixture
def sessions(engine: Engine) -> sessionmaker[Session]:
    return storage.session_factory(engine)


@pytest.fixture
def settings_overrides() -> dict[str, object]:
    """Override in a test module to change the configuration."""
    return {}


@pytest.fixture
def settings(tmp_path: Path, settings_overrides: dict[str, object]) -> Settings:
    overrides: dict[str, object] = {"api.token": TOKEN, "api.max_upload_mb": "1", "retention.trash_days": "7"}
    settings = load_settings(None, cwd=tmp_path, environ={}, overrides={**overrides, **settings_overrides})
    ensure_folders(settings)
    return settings


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def metrics(sessions: sessionmaker[Session]) -> Metrics:
    def queue_counts() -> dict[str, int]:
        with sessions() as session:
            return {state.value: n for state, n in storage.count_by_state(session).items()}

    return Metrics(queue_counts=queue_counts)


@dataclass
class FakeMaps:
    cell: int
    noise: np.ndarray
    blur: np.ndarray
    blockiness: np.ndarray


@dataclass
class FakeAnalysis:
    maps: FakeMaps


def fake_analyse(pixels: np.ndarray, quantization: Any = None) -> FakeAnalysis:
    """Noise ramps from left (clean) to right (damaged), one value per 8x8 cell."""
    rows, cols = max(1, pixels.shape[0] // 8), max(1, pixels.shape[1] // 8)
    noise = np.tile(np.linspace(0.0, 8.0, cols, dtype=np.float32), (rows, 1))
    zeros = np.zeros((rows, cols), np.float32)
    return FakeAnalysis(FakeMaps(8, noise, zeros, zeros))


@pytest.fixture
def make_context(
    settings: Settings, sessions: sessionmaker[Session], metrics: Metrics, clock: FakeClock
) -> Callable[..., ApiContext]:
    def make(**changes: Any) -> ApiContext:
        values: dict[str, Any] = {
            "settings": settings,
            "sessions": sessions,
            "metrics": metrics,
            "intake": Intake(settings, sessions, model_version="test-1", clock=clock),
            "status": lambda: dict(LIVE_STATUS),
            "retention": RetentionRunner(settings, sessions, metrics, clock),
            "clock": clock,
            "analyse": fake_analyse,
            "status_cache_seconds": 0.0,
        }
        values.update(changes)
        return ApiContext(**values)

    return make


@pytest.fixture
def context(make_context: Callable[..., ApiContext]) -> ApiContext:
    return make_context()


@pytest.fixture
def app(context: ApiContext) -> Flask:
    return create_app(context)


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    """A test client that sends the bearer token unless a test passes its own headers."""
    return app.test_client()


class Api:
    """Thin helper over the test client: authenticated JSON calls."""

    def __init__(self, client: FlaskClient) -> None:
        self.client = client

    def get(self, path: str, **kw: Any) -> Any:
        return self.client.get(path, headers={**AUTH, **kw.pop("headers", {})}, **kw)

    def post(self, path: str, json: Any = None, **kw: Any) -> Any:
        return self.client.post(path, json=json, headers={**AUTH, **kw.pop("headers", {})}, **kw)

    def put(self, path: str, json: Any = None, **kw: Any) -> Any:
        return self.client.put(path, json=json, headers={**AUTH, **kw.pop("headers", {})}, **kw)


@pytest.fixture
def api(client: FlaskClient) -> Api:
    return Api(client)


def image_bytes(seed: int = 0, size: tuple[int, int] = (48, 32), fmt: str = "PNG") -> bytes:
    """A small real picture (noise over a gradient), distinct per ``seed``."""
    rng = np.random.default_rng(seed)
    width, height = size
    gradient = np.linspace(0, 255, width, dtype=np.float32)[None, :, None].repeat(height, 0).repeat(3, 2)
    pixels = np.clip(gradient + rng.normal(0, 20, (height, width, 3)), 0, 255).astype(np.uint8)
    buffer = io.BytesIO()
    PILImage.fromarray(pixels, "RGB").save(buffer, fmt)
    return buffer.getvalue()


SCORES = {
    "width": 48,
    "height": 32,
    "noise_sigma": 5.0,
    "blur_sigma": 0.5,
    "jpeg_quality": None,
    "contrast": 0.4,
    "quality": 60.0,
}


class Library:
    """Puts images in place as the worker would have left them: files in the configured folders, rows in the DB."""

    def __init__(self, settings: Settings, sessions: sessionmaker[Session]) -> None:
        self.settings = settings
        self.sessions = sessions
        self.inbox = settings.inboxes[0]
        self._seed = 0

    def add(
        self,
        name: str | None = None,
        *,
        state: str = "done",
        finished_at: datetime = START,
        original: str = "archive",
        scores: Mapping[str, Any] | None = None,
        after: Mapping[str, Any] | None = None,
        content: bytes | None = None,
    ) -> int:
        """One image; ``original``: ``archive`` (moved there), ``keep`` (left in the inbox) or ``delete``."""
        self._seed += 1
        name = name or f"photo{self._seed}.png"
        data = content if content is not None else image_bytes(self._seed)
        source = self.inbox.path / name
        source.parent.mkdir(parents=True, exist_ok=True)
        source.write_bytes(data)
        st = source.stat()
        with self.sessions.begin() as session:
            image = storage.intake(
                session,
                storage.NewImage(
                    inbox=self.inbox.name,
                    source_path=str(source),
                    relative_path=name,
                    content_hash=f"{self._seed:064x}",
                    source_size=st.st_size,
                    source_mtime_ns=st.st_mtime_ns,
                    format="png",
                    model_version="test-1",
                    parameters={"strength": 1.0},
                ),
                now=finished_at - timedelta(minutes=1),
            )
            image_id = image.id
            if state == "queued":
                return image_id
            session.execute(
                sa.update(Image)
                .where(Image.id == image_id)
                .values(state=ImageState.PROCESSING, lease_owner="test", started_at=finished_at)
            )
            if state == "failed":
                storage.mark_failed(session, image_id, "cannot decode", now=finished_at, owner="test")
                target = self.inbox.failed / name
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.move(source, target)
                Path(f"{target}.error.txt").write_text("cannot decode\n")
                storage.mark_original_moved(session, image_id, str(target), now=finished_at)
                return image_id
            output = self.inbox.output / name
            output.parent.mkdir(parents=True, exist_ok=True)
            output.write_bytes(image_bytes(self._seed + 1000))
            storage.mark_done(
                session,
                image_id,
                output_path=str(output),
                output_size=output.stat().st_size,
                now=finished_at,
                owner="test",
                before={**SCORES, **(scores or {})},
                after={**SCORES, "noise_sigma": 1.0, "quality": 80.0, **(after or {})},
                device="cpu",
            )
            if original == "archive":
                target = self.inbox.archive / name
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.move(source, target)
                storage.mark_original_moved(session, image_id, str(target), now=finished_at)
            elif original == "delete":
                source.unlink()
                storage.mark_original_deleted(session, image_id, now=finished_at)
        return image_id

    def image(self, image_id: int) -> Image:
        with self.sessions() as session:
            return storage.get_image(session, image_id)


@pytest.fixture
def library(settings: Settings, sessions: sessionmaker[Session]) -> Library:
    return Library(settings, sessions)


@pytest.fixture
def make_image_bytes() -> Callable[..., bytes]:
    return image_bytes


@pytest.fixture
def auth() -> dict[str, str]:
    return dict(AUTH)
