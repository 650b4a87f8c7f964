"""The worker, stepped with ``loop_once`` on real folders and a real SQLite file, with a fake engine.

The fake engine brightens pixels a little (so outputs differ from inputs) and can be told to fail; everything else
(decoding, blending, encoding, the database, the file moves) is the real thing. Time is an injected clock, so retry
backoff is tested by moving the clock, not by sleeping.
"""

from __future__ import annotations

import io
import os
import sys
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
from PIL import Image as PILImage

import storage
from config import Settings, ensure_folders, load_settings
from core.atomicfile import temp_path
from core.engine import DEFAULT_CPU_STRIPED_TILE
from daemon.intake import Intake, IntakeRequest
from daemon.metrics import Metrics
from daemon.worker import Engines, LeaseKeeper, Worker, WorkerThread
from daemon.worker.engines import BUILTIN, engine_settings, load_engine, model_version
from daemon.worker.files import move_to_free_name, remove_temp_files, upload_part_path
from daemon.worker.leases import is_dead_owner
from daemon.worker.naming import candidates, choose_free, error_note, is_candidate_of, mirrored, output_name
from daemon.worker.outcome import OutcomeKind, judge
from daemon.worker.priority import lower_thread_priority, thread_nice
from daemon.worker.recovery import requeue_expired
from storage import ImageState

T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


@dataclass(frozen=True)
class SizeOnlyAnalysis:
    """A fast stand-in for the analyser: size only, no maps (the blend then applies the strength uniformly)."""

    width: int
    height: int
    maps: None = None

    def scores(self) -> dict[str, Any]:
        return {"width": self.width, "height": self.height}


def size_only_analyse(pixels: np.ndarray, quantization: Any = None) -> SizeOnlyAnalysis:
    return SizeOnlyAnalysis(width=int(pixels.shape[1]), height=int(pixels.shape[0]))


# --- fakes and helpers -----------------------------------------------------------------------------------------------


class Clock:
    """A settable UTC clock."""

    def __init__(self, now: datetime = T0) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> datetime:
        self.now += timedelta(seconds=seconds)
        return self.now


class FakeEngine:
    """Stands in for ``core.engine.Engine``: ``fail(tag)`` may return an exception to raise for that image."""

    def __init__(
        self, fail: Callable[[int], BaseException | None] | None = None, name: str = "fake", ensemble: int = 1
    ) -> None:
        self.device = "cpu"
        self.autocast_name = "fp32"
        self.ensemble = ensemble
        self.descriptor = SimpleNamespace(name=name, version="1", scale=1)
        self.fail = fail or (lambda tag: None)
        self.seen: list[int] = []
        self.on_image: Callable[[int], None] = lambda tag: None

    def run(self, items: Iterable[tuple[int, np.ndarray]]) -> Iterator[Any]:
        for tag, pixels in items:
            self.seen.append(tag)
            self.on_image(tag)
            error = self.fail(tag)
            if error is not None:
                raise error
            restored = np.clip(np.asarray(pixels, dtype=np.float32) * 0.8 + 0.1, 0.0, 1.0)
            yield SimpleNamespace(tag=tag, pixels=restored, seconds=0.001, tiles=1)

    def stats(self) -> Any:
        return SimpleNamespace(splits=0)


def png_bytes(seed: int, size: int = 24) -> bytes:
    pixels = np.random.default_rng(seed).integers(0, 256, (size, size, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    PILImage.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def jpeg_bytes(seed: int, size: int = 32) -> bytes:
    pixels = np.random.default_rng(seed).integers(0, 256, (size, size, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    PILImage.fromarray(pixels).save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


@dataclass
class Harness:
    """Settings, database, intake and a worker on ``tmp_path``; ``step()`` runs one ``loop_once``."""

    settings: Settings
    sessions: Any
    db: Any
    clock: Clock
    engine: FakeEngine
    worker: Worker
    intake: Intake
    metrics: Metrics

    @property
    def inbox(self) -> Path:
        return self.settings.inboxes[0].path

    @property
    def output(self) -> Path:
        return self.settings.inboxes[0].output

    @property
    def archive(self) -> Path:
        return self.settings.inboxes[0].archive

    @property
    def failed(self) -> Path:
        return self.settings.inboxes[0].failed

    def drop(self, relative: str, content: bytes) -> Path:
        path = self.inbox / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
        return path

    def submit(self, path: Path) -> int:
        stat = path.stat()
        request = IntakeRequest(
            self.settings.inboxes[0].name, path, path.relative_to(self.inbox), stat.st_size, stat.st_mtime_ns
        )
        return self.intake.submit(request).image_id

    def add(self, relative: str, content: bytes) -> int:
        return self.submit(self.drop(relative, content))

    def step(self, now: datetime | None = None) -> int:
        return self.worker.loop_once(now)

    def image(self, image_id: int) -> storage.Image:
        with self.sessions() as session:
            return storage.get_image(session, image_id)

    def reprocess(self, image_id: int, **parameters: Any) -> None:
        with self.sessions.begin() as session:
            storage.requeue_for_reprocess(session, image_id, parameters, now=self.clock())


@pytest.fixture
def make(tmp_path: Path) -> Iterator[Callable[..., Harness]]:
    """``make(**overrides)`` builds a harness (worker initialized); everything is shut down after the test."""
    built: list[Harness] = []

    def build(engine: FakeEngine | None = None, engines: Engines | None = None, **overrides: Any) -> Harness:
        values: dict[str, Any] = {"worker.max_wait_ms": 0, "worker.backoff_base_seconds": 10.0}
        values.update({key.replace("__", "."): value for key, value in overrides.items()})
        settings = load_settings(None, cwd=tmp_path, environ={}, overrides=values)
        ensure_folders(settings)
        db = storage.create_engine(settings.database_url)
        storage.migrate(db)
        sessions = storage.session_factory(db)
        clock = Clock()
        engine = engine or FakeEngine()
        metrics = Metrics()
        worker = Worker(
            settings,
            sessions,
            engines or Engines(engine),  # type: ignore[arg-type]
            analyse=size_only_analyse,
            analyser_name="size-only (test)",
            metrics=metrics,
            clock=clock,
        )
        intake = Intake(settings, sessions, "fake@1", clock=clock)
        harness = Harness(settings, sessions, db, clock, engine, worker, intake, metrics)
        built.append(harness)
        worker.initialize()
        return harness

    yield build
    for harness in built:
        harness.worker.shutdown()
        harness.db.dispose()


def files_under(root: Path) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())


# --- the happy path --------------------------------------------------------------------------------------------------


def test_outputs_mirror_subfolders_and_originals_are_archived_after_the_commit(make: Callable[..., Harness]) -> None:
    h = make()
    a = h.add("a.png", png_bytes(1))
    b = h.add("trip/day 1/b.jpeg", jpeg_bytes(2))
    assert h.step() == 2
    first, second = h.image(a), h.image(b)
    assert first.state is ImageState.DONE and second.state is ImageState.DONE
    assert files_under(h.output) == ["a.png", "trip/day 1/b.jpg"]  # JPEG keeps its format, named .jpg
    assert first.output_path == str(h.output / "a.png")
    assert files_under(h.archive) == ["a.png", "trip/day 1/b.jpeg"]
    assert second.archive_path == str(h.archive / "trip/day 1/b.jpeg")
    assert files_under(h.inbox) == []
    # scores, timings, device and model version recorded with the output
    assert second.device == "cpu" and second.model_version == "fake@1"
    assert second.width == 32 and second.height == 32
    assert (first.format, second.format) == ("PNG", "JPEG")
    assert {s.phase.value for s in second.scores} == {"before", "after"}
    assert set(second.timings) >= {"decode", "analysis", "model", "blend", "encode", "total"}
    assert second.output_size == (h.output / "trip/day 1/b.jpg").stat().st_size
    assert h.metrics.processed._value.get() == 2
    assert not storage_pending(h)
    # the output is an image, written from the engine's pixels (brightened), not a copy
    with PILImage.open(h.output / "a.png") as out:
        assert out.size == (24, 24)
        assert np.asarray(out).astype(int).min() >= 20


def storage_pending(h: Harness) -> dict[int, str]:
    with h.sessions() as session:
        return storage.pending_outputs(session)


@pytest.mark.parametrize("policy", ["keep", "delete"])
def test_originals_policy_keep_or_delete(make: Callable[..., Harness], policy: str) -> None:
    h = make(**{"inbox.0.originals": policy})
    path = h.drop("sub/x.png", png_bytes(3))
    image_id = h.submit(path)
    h.step()
    image = h.image(image_id)
    assert image.state is ImageState.DONE
    assert path.exists() == (policy == "keep")
    assert (image.original_deleted_at is not None) == (policy == "delete")
    assert image.archive_path is None


def test_output_format_setting_and_strength_zero(make: Callable[..., Harness]) -> None:
    h = make(**{"inbox.0.output_format": "png", "profiles.default.strength": 0.0})
    image_id = h.add("p.jpg", jpeg_bytes(4))
    h.step()
    assert h.image(image_id).output_path == str(h.output / "p.png")
    assert h.engine.seen == []  # strength 0 needs no model
    with PILImage.open(h.output / "p.png") as out:
        assert out.format == "PNG"


# --- names -----------------------------------------------------------------------------------------------------------


def test_collisions_get_suffixes_and_unrelated_files_are_never_overwritten(make: Callable[..., Harness]) -> None:
    h = make(**{"inbox.0.output_format": "png"})
    (h.output / "one.png").write_bytes(b"somebody else's file")
    ids = [h.add("one.png", png_bytes(5)), h.add("one.jpg", jpeg_bytes(6)), h.add("one.webp.png", png_bytes(7))]
    while h.step():
        pass
    outputs = [h.image(i).output_path for i in ids]
    assert outputs == [str(h.output / "one-1.png"), str(h.output / "one-2.png"), str(h.output / "one.webp.png")]
    assert (h.output / "one.png").read_bytes() == b"somebody else's file"


def test_a_name_recorded_for_another_image_is_not_reused_even_if_its_file_is_gone(
    make: Callable[..., Harness],
) -> None:
    h = make(**{"inbox.0.originals": "keep"})
    first = h.add("a/x.png", png_bytes(8))
    h.step()
    (h.output / "a/x.png").unlink()  # e.g. retention, or a user
    second = h.add("a/x.png", png_bytes(9))  # a new file under the old name
    h.step()
    assert h.image(second).output_path == str(h.output / "a/x-1.png")
    assert h.image(first).output_path == str(h.output / "a/x.png")


def test_reprocess_replaces_its_own_output_and_reads_the_archived_original(make: Callable[..., Harness]) -> None:
    h = make()
    image_id = h.add("r/photo.png", png_bytes(10))
    h.step()
    first = (h.output / "r/photo.png").read_bytes()
    h.reprocess(image_id, strength=0.5)
    assert h.step() == 1
    image = h.image(image_id)
    assert image.state is ImageState.DONE
    assert image.output_path == str(h.output / "r/photo.png")
    assert files_under(h.output) == ["r/photo.png"]
    assert (h.output / "r/photo.png").read_bytes() != first
    assert image.archive_path == str(h.archive / "r/photo.png") and files_under(h.archive) == ["r/photo.png"]
    assert image.parameters["strength"] == 0.5


def test_reprocess_whose_original_is_gone_fails_with_a_clear_reason(make: Callable[..., Harness]) -> None:
    h = make()
    image_id = h.add("gone.png", png_bytes(11))
    h.step()
    (h.archive / "gone.png").unlink()
    h.reprocess(image_id)
    h.step()
    image = h.image(image_id)
    assert image.state is ImageState.FAILED
    assert "original is gone" in image.error and str(h.archive / "gone.png") in image.error
    assert (h.output / "gone.png").exists()  # the earlier output is not touched


def test_reprocess_after_the_original_was_deleted_fails(make: Callable[..., Harness]) -> None:
    h = make(**{"inbox.0.originals": "delete"})
    image_id = h.add("d.png", png_bytes(12))
    h.step()
    h.reprocess(image_id)
    h.step()
    assert "original was deleted" in h.image(image_id).error


# --- failures --------------------------------------------------------------------------------------------------------


def test_undecodable_files_go_to_the_failed_folder_with_their_reason(make: Callable[..., Harness]) -> None:
    h = make()
    text = h.add("notes/readme.jpg", b"this is not a photo at all\n" * 10)
    truncated = h.add("cut.jpg", jpeg_bytes(13, size=64)[:400])
    good = h.add("ok.png", png_bytes(14))
    h.step()
    assert h.image(good).state is ImageState.DONE
    for image_id, relative in ((text, "notes/readme.jpg"), (truncated, "cut.jpg")):
        image = h.image(image_id)
        assert image.state is ImageState.FAILED, image.error
        assert image.archive_path == str(h.failed / relative)
        assert (h.failed / relative).exists()
        note = error_note(h.failed / relative).read_text()
        assert image.error in note and f"image id: {image_id}" in note
    assert "truncated" in h.image(truncated).error
    assert files_under(h.inbox) == []
    assert not (h.output / "cut.jpg").exists() and not (h.output / "notes").exists()
    assert h.metrics.failed.labels(kind="permanent")._value.get() == 2


def test_failed_folder_collisions_get_suffixes_with_their_own_notes(make: Callable[..., Harness]) -> None:
    h = make()
    first = h.add("bad.jpg", b"garbage one")
    h.step()
    second = h.add("bad.jpg", b"garbage two")
    h.step()
    assert h.image(first).archive_path == str(h.failed / "bad.jpg")
    assert h.image(second).archive_path == str(h.failed / "bad-1.jpg")
    assert files_under(h.failed) == ["bad-1.jpg", "bad-1.jpg.error.txt", "bad.jpg", "bad.jpg.error.txt"]


def test_transient_failures_back_off_then_succeed_with_the_original_untouched(make: Callable[..., Harness]) -> None:
    failures = {"left": 2}

    def fail(tag: int) -> BaseException | None:
        if failures["left"]:
            failures["left"] -= 1
            return MemoryError("CUDA out of memory")
        return None

    h = make(engine=FakeEngine(fail))
    path = h.drop("t.png", png_bytes(15))
    image_id = h.submit(path)
    h.step()
    image = h.image(image_id)
    assert image.state is ImageState.QUEUED and "out of memory" in image.error
    assert image.attempts == 1 and image.next_attempt_at == T0 + timedelta(seconds=10)
    assert path.exists() and files_under(h.output) == []
    assert h.step(T0 + timedelta(seconds=9)) == 0  # not due yet
    h.clock.now = T0 + timedelta(seconds=10)
    h.step()
    assert h.image(image_id).next_attempt_at == T0 + timedelta(seconds=30)  # doubled
    h.clock.now = T0 + timedelta(seconds=30)
    h.step()
    image = h.image(image_id)
    assert image.state is ImageState.DONE and image.attempts == 3
    assert files_under(h.output) == ["t.png"] and h.metrics.retried._value.get() == 2


def test_transient_failures_give_up_after_max_attempts(make: Callable[..., Harness]) -> None:
    h = make(engine=FakeEngine(lambda tag: RuntimeError("device lost")), **{"worker.max_attempts": 2})
    path = h.drop("g.png", png_bytes(16))
    image_id = h.submit(path)
    h.step()
    h.step(h.clock.advance(3600))
    image = h.image(image_id)
    assert image.state is ImageState.FAILED
    assert image.error.startswith("gave up after 2 attempts: model failed: device lost")
    assert path.exists() and files_under(h.failed) == []  # transient: the original stays where it was
    assert h.metrics.failed.labels(kind="transient")._value.get() == 1


def test_a_write_failure_is_transient(make: Callable[..., Harness]) -> None:
    h = make()
    image_id = h.add("w/x.png", png_bytes(17))
    (h.output / "w").write_text("a file where the output folder should be")
    h.step()
    image = h.image(image_id)
    assert image.state is ImageState.QUEUED and "Cannot write" in image.error
    assert (h.inbox / "w/x.png").exists()


def test_a_source_missing_for_a_moment_is_retried(make: Callable[..., Harness]) -> None:
    h = make()
    path = h.drop("m.png", png_bytes(18))
    image_id = h.submit(path)
    hidden = path.with_name("m.png.part")
    path.rename(hidden)
    h.step()
    assert h.image(image_id).state is ImageState.QUEUED
    hidden.rename(path)
    h.step(h.clock.advance(10))
    assert h.image(image_id).state is ImageState.DONE


def test_a_file_changed_after_intake_is_superseded_not_moved(make: Callable[..., Harness]) -> None:
    h = make()
    path = h.drop("s.png", png_bytes(19))
    image_id = h.submit(path)
    path.write_bytes(png_bytes(20, size=30))
    h.step()
    image = h.image(image_id)
    assert image.state is ImageState.FAILED and image.error.startswith("superseded")
    assert path.exists() and files_under(h.failed) == []


def test_judging_errors() -> None:
    from core.imageio import ImageNotFound, ImageTooLarge, ImageWriteError, UnreadableImage, UnsupportedImage

    assert judge(UnreadableImage("damaged")) is OutcomeKind.BAD_INPUT
    assert judge(UnsupportedImage("psd")) is OutcomeKind.BAD_INPUT
    assert judge(ImageTooLarge("too big")) is OutcomeKind.BAD_INPUT
    assert judge(ImageWriteError("disk full")) is OutcomeKind.RETRY
    assert judge(ImageNotFound("moved")) is OutcomeKind.RETRY
    assert judge(OSError(28, "No space left on device")) is OutcomeKind.RETRY
    denied = UnreadableImage("Cannot open x: permission denied.")
    denied.__cause__ = PermissionError(13, "Permission denied")
    assert judge(denied) is OutcomeKind.RETRY
    memory = ImageTooLarge("not enough memory")
    memory.__cause__ = MemoryError()
    assert judge(memory) is OutcomeKind.RETRY


# --- queue control and crash safety ---------------------------------------------------------------------------------


def test_nothing_is_claimed_while_paused(make: Callable[..., Harness]) -> None:
    h = make()
    image_id = h.add("p.png", png_bytes(21))
    with h.sessions.begin() as session:
        storage.set_paused(session, True)
    assert h.step() == 0 and h.image(image_id).state is ImageState.QUEUED
    assert h.worker.status()["paused"] is True
    assert h.worker.status()["ensemble"] == 1
    with h.sessions.begin() as session:
        storage.set_paused(session, False)
    assert h.step() == 1


def test_batches_are_limited_and_model_parameters_choose_the_engine(make: Callable[..., Harness]) -> None:
    h = make(**{"worker.batch_size": 2})
    ids = [h.add(f"b{i}.png", png_bytes(30 + i)) for i in range(3)]
    assert h.step() == 2 and h.step() == 1 and h.step() == 0
    assert all(h.image(i).state is ImageState.DONE for i in ids)
    with h.sessions.begin() as session:
        storage.requeue_for_reprocess(session, ids[0], {"model": "missing.safetensors"}, now=h.clock())
    h.step()
    image = h.image(ids[0])
    assert image.state is ImageState.FAILED and "missing.safetensors" in image.error
    assert (h.output / "b0.png").exists()  # the old output stays


def test_an_ensemble_parameter_runs_on_an_engine_with_those_views_and_is_recorded(
    make: Callable[..., Harness],
) -> None:
    loaded: list[tuple[str, int]] = []

    def loader(model: str, views: int) -> FakeEngine:
        loaded.append((model, views))
        return FakeEngine(ensemble=views)

    default = FakeEngine()
    h = make(engine=default, engines=Engines(default, loader=loader))  # type: ignore[arg-type]
    ids = [h.add(f"e{i}.png", png_bytes(60 + i)) for i in range(2)]
    assert h.step() == 2 and default.seen == ids and loaded == []
    h.reprocess(ids[0], ensemble=8)
    h.reprocess(ids[1], ensemble=1)  # the configured views: the default engine, nothing loaded
    assert h.step() == 2
    assert loaded == [("builtin", 8)] and default.seen == [*ids, ids[1]]
    assert h.image(ids[0]).model_version == "fake@1+ensemble8" and h.image(ids[1]).model_version == "fake@1"
    assert all(h.image(i).state is ImageState.DONE for i in ids)


def test_stopping_gives_unfinished_images_back_without_counting_the_attempt(make: Callable[..., Harness]) -> None:
    h = make()
    ids = [h.add(f"s{i}.png", png_bytes(40 + i)) for i in range(4)]
    h.engine.on_image = lambda tag: h.worker.request_stop(finish_within=0) if tag == ids[1] else None
    h.step()
    states = [h.image(i).state for i in ids]
    assert states[0] is ImageState.DONE
    assert states[2:] == [ImageState.QUEUED, ImageState.QUEUED]
    assert all(h.image(i).attempts == 0 for i in ids[2:])
    assert h.step() == 0  # a stopping worker claims nothing


def test_restart_after_a_crash_requeues_dead_leases_and_reuses_the_reserved_output_name(
    make: Callable[..., Harness],
) -> None:
    h = make()
    image_id = h.add("c/crash.png", png_bytes(50))
    dead = f"{h.worker.owner.rsplit(':', 2)[0]}:{2**22 + 12345}:deadbeef"
    assert is_dead_owner(dead, h.worker.owner)
    with h.sessions.begin() as session:  # a worker that claimed it, reserved its name, wrote, then died
        storage.claim_batch(session, dead, 8, 3600, h.clock())
        storage.reserve_outputs(session, {image_id: str(h.output / "c/crash.png")}, owner=dead, now=h.clock())
    (h.output / "c").mkdir(parents=True)
    (h.output / "c/crash.png").write_bytes(b"half-way output of the dead worker")
    (h.output / "c/.crash.png.0123456789ab.tmp").write_bytes(b"temporary file of its atomic write")
    h.worker.shutdown()
    restarted = make()
    report = restarted.worker.recovery
    assert report is not None and report.requeued == [image_id]
    assert [p.name for p in report.temp_files] == [".crash.png.0123456789ab.tmp"]
    restarted.step()
    image = restarted.image(image_id)
    assert image.state is ImageState.DONE and image.attempts == 2
    assert files_under(restarted.output) == ["c/crash.png"]  # replaced, not joined by crash-1.png
    assert (restarted.output / "c/crash.png").read_bytes().startswith(b"\x89PNG")


def test_restart_finishes_the_originals_policy_a_crash_interrupted(make: Callable[..., Harness]) -> None:
    h = make()
    moved = h.add("x/moved.png", png_bytes(60))
    stayed = h.add("x/stayed.png", png_bytes(61))
    with h.sessions.begin() as session:  # done committed, then the worker died before/while moving the originals
        for image_id in (moved, stayed):
            storage.claim_batch(session, h.worker.owner, 1, 60, h.clock())
            storage.mark_done(session, image_id, output_path=str(h.output / f"{image_id}.png"), now=h.clock())
    (h.archive / "x").mkdir(parents=True)
    os.link(h.inbox / "x/moved.png", h.archive / "x/moved.png")  # linked, not yet unlinked
    h.worker.shutdown()
    restarted = make()
    assert restarted.worker.recovery is not None and restarted.worker.recovery.originals_settled == 2
    assert files_under(restarted.inbox) == []
    assert files_under(restarted.archive) == ["x/moved.png", "x/stayed.png"]
    assert restarted.image(moved).archive_path == str(restarted.archive / "x/moved.png")


def test_a_bad_file_moved_before_a_crash_is_recognised_in_the_failed_folder(make: Callable[..., Harness]) -> None:
    h = make()
    image_id = h.add("late/bad.jpg", b"not an image, moved by a worker that died before recording it")
    move_to_free_name(h.inbox / "late/bad.jpg", h.failed / "late/bad.jpg")
    h.step()
    image = h.image(image_id)
    assert image.state is ImageState.FAILED and image.archive_path == str(h.failed / "late/bad.jpg")
    assert error_note(h.failed / "late/bad.jpg").exists()
    assert files_under(h.failed) == ["late/bad.jpg", "late/bad.jpg.error.txt"]


def test_an_orphan_output_of_an_image_that_later_failed_is_removed(make: Callable[..., Harness]) -> None:
    h = make(engine=FakeEngine(lambda tag: RuntimeError("broken")), **{"worker.max_attempts": 1})
    image_id = h.add("o.png", png_bytes(70))
    with h.sessions.begin() as session:
        storage.reserve_outputs(session, {image_id: str(h.output / "o.png")}, owner="x", now=h.clock())
    (h.output / "o.png").write_bytes(b"left by a crashed attempt")
    h.step()
    assert h.image(image_id).state is ImageState.FAILED
    assert files_under(h.output) == [] and not storage_pending(h)


def test_lease_keeper_renews_tracked_leases(make: Callable[..., Harness]) -> None:
    h = make()
    image_id = h.add("l.png", png_bytes(80))
    with h.sessions.begin() as session:
        storage.claim_batch(session, "me", 1, 10, h.clock())
    keeper = LeaseKeeper(h.sessions, "me", 10, h.clock)
    keeper.track([image_id])
    h.clock.advance(5)
    assert keeper.renew() == [image_id]
    assert h.image(image_id).lease_expires_at == h.clock() + timedelta(seconds=10)
    keeper.untrack([image_id])
    assert keeper.renew() == []


def test_worker_thread_processes_and_stops(make: Callable[..., Harness]) -> None:
    import time

    h = make()
    h.worker.shutdown()  # the thread drives a worker of its own
    ids = [h.add(f"t{i}.png", png_bytes(90 + i)) for i in range(3)]
    worker = Worker(h.settings, h.sessions, Engines(FakeEngine()), analyse=size_only_analyse, clock=h.clock)  # type: ignore[arg-type]
    thread = WorkerThread(worker, idle_seconds=0.05)
    thread.start()
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and not all(h.image(i).state is ImageState.DONE for i in ids):
            worker.wake()
            time.sleep(0.05)
        assert all(h.image(i).state is ImageState.DONE for i in ids)
        assert thread.is_alive() and worker.threads_alive()
    finally:
        assert thread.stop(finish_timeout=5)
    assert not thread.is_alive() and not worker.threads_alive()


# --- pure naming -----------------------------------------------------------------------------------------------------


def test_naming_rules(tmp_path: Path) -> None:
    assert mirrored(tmp_path, "a/b/c.jpg") == tmp_path / "a/b/c.jpg"
    assert mirrored(tmp_path, "a/c.jpg", "c.png") == tmp_path / "a/c.png"
    for bad in ("../x.jpg", "/etc/passwd", "a/../../x"):
        with pytest.raises(ValueError):
            mirrored(tmp_path, bad)
    assert output_name("a/photo.final.jpeg", ".jpg") == "photo.final.jpg"
    names = [p.name for _, p in zip(range(3), candidates(tmp_path / "x.jpg"))]
    assert names == ["x.jpg", "x-1.jpg", "x-2.jpg"]
    assert choose_free(tmp_path / "x.jpg", lambda p: p.name in {"x.jpg", "x-1.jpg"}).name == "x-2.jpg"
    assert is_candidate_of(tmp_path / "x-12.jpg", tmp_path / "x.jpg")
    assert not is_candidate_of(tmp_path / "x-a.jpg", tmp_path / "x.jpg")
    assert error_note(tmp_path / "x.jpg").name == "x.jpg.error.txt"


def test_recovery_sweeps_the_temporary_names_atomic_writes_use(tmp_path: Path) -> None:
    """``core.atomicfile`` names its temporary files; recovery must recognise every one of them, and nothing else."""
    temporaries = [temp_path(tmp_path / name) for name in ("photo.jpg", "photo.jpg.error.txt", ".hidden.png")]
    kept = ["photo.jpg", ".photo.jpg.tmp", "notes.tmp", ".upload-0123abcd.part"]
    for path in [*temporaries, *(tmp_path / name for name in kept)]:
        path.write_bytes(b"x")
    assert sorted(remove_temp_files([tmp_path])) == sorted(temporaries)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(kept)


@pytest.mark.parametrize(("tile", "engine_tile"), [(0, DEFAULT_CPU_STRIPED_TILE), (512, 512)])
def test_worker_tile_zero_lets_the_engine_choose_per_device(tmp_path: Path, tile: int, engine_tile: int) -> None:
    settings = load_settings(
        None, cwd=tmp_path, environ={}, overrides={"worker.device": "cpu", "worker.tile": str(tile)}
    )
    assert engine_settings(settings.worker).tile == (tile or None)
    assert load_engine(BUILTIN, settings.worker).tile == engine_tile


def test_worker_ensemble_reaches_the_engine_and_the_recorded_model_version(tmp_path: Path) -> None:
    settings = load_settings(
        None, cwd=tmp_path, environ={"ENHANCERD_WORKER_ENSEMBLE": "4"}, overrides={"worker.device": "cpu"}
    )
    assert settings.worker.ensemble == 4
    engine = load_engine(BUILTIN, settings.worker)
    assert engine.ensemble == 4
    assert model_version(engine) == f"{engine.descriptor.name}@{engine.descriptor.version}+ensemble4"
    assert load_settings(None, cwd=tmp_path, environ={}).worker.ensemble == 1


def test_an_image_whose_worker_keeps_dying_fails_as_crashed_and_is_counted(make: Callable[..., Harness]) -> None:
    h = make(**{"worker.max_attempts": 2})
    image_id = h.add("a.png", png_bytes(1))
    for attempt in (1, 2):  # a worker claims it, then dies before finishing (its lease is never renewed)
        with h.sessions.begin() as session:
            [claimed] = storage.claim_batch(session, f"gone:{attempt}", 8, 60.0, h.clock())
        assert claimed.id == image_id
        h.clock.advance(120)
        requeue_expired(h.sessions, 2, h.clock(), metrics=h.metrics)
    image = h.image(image_id)
    assert image.state is ImageState.FAILED and image.attempts == 2
    assert h.metrics.failed.labels(kind="crashed")._value.get() == 1


def test_restart_removes_uploads_a_crash_interrupted_and_nothing_else(make: Callable[..., Harness]) -> None:
    h = make()
    stale = upload_part_path(h.inbox)
    stale.write_bytes(b"half an upload")
    lookalikes = [h.inbox / ".upload-notes.part", h.inbox / "photo.part", h.inbox / "sub" / stale.name]
    for path in lookalikes:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"not ours")
    h.worker.shutdown()
    report = make().worker.recovery
    assert report is not None and report.temp_files == [stale]
    assert not stale.exists()
    assert all(path.exists() for path in lookalikes)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="per-thread nice values are a Linux feature")
def test_the_worker_runs_its_engine_and_decoding_nicer_than_the_rest_of_the_daemon(
    make: Callable[..., Harness],
) -> None:
    import time

    h = make(worker__nice=7)
    h.worker.shutdown()  # the thread drives a worker of its own
    base = thread_nice()
    engine_nice: list[int] = []
    decode_nice: list[int] = []
    engine = FakeEngine()
    engine.on_image = lambda tag: engine_nice.append(thread_nice())

    def analyse(pixels: np.ndarray, quantization: Any = None) -> SizeOnlyAnalysis:
        decode_nice.append(thread_nice())
        return size_only_analyse(pixels, quantization)

    image_id = h.add("n.png", png_bytes(5))
    worker = Worker(h.settings, h.sessions, Engines(engine), analyse=analyse, clock=h.clock)  # type: ignore[arg-type]
    thread = WorkerThread(worker, idle_seconds=0.05)
    thread.start()
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and h.image(image_id).state is not ImageState.DONE:
            time.sleep(0.05)
    finally:
        assert thread.stop(finish_timeout=5)
    assert h.image(image_id).state is ImageState.DONE
    assert engine_nice and set(engine_nice) == {min(19, base + 7)}
    assert decode_nice and set(decode_nice) == {min(19, base + 7)}
    assert thread_nice() == base  # the caller's own thread keeps its priority


def test_lowering_priority_is_per_thread_and_zero_changes_nothing() -> None:
    import threading

    base = thread_nice()
    seen: dict[str, tuple[bool, int]] = {}

    def lower(name: str, increment: int) -> None:
        seen[name] = (lower_thread_priority(increment), thread_nice())

    for name, increment in (("zero", 0), ("three", 3)):
        helper = threading.Thread(target=lower, args=(name, increment))
        helper.start()
        helper.join()
    assert seen["zero"] == (False, base)
    if sys.platform.startswith("linux") and base < 19:
        assert seen["three"] == (True, min(19, base + 3))
    assert thread_nice() == base
