"""The real daemon as a subprocess on temporary folders: a burst of files, a kill -9 mid-batch, a restart, SIGTERM.

200 small files are dropped at once into nested folders: distinct photos (PNG and JPEG), duplicates, text named
.jpg, truncated JPEGs, and slow writers (JPEGs written in chunks over several seconds). Half-way through, the daemon
is killed with SIGKILL while a batch is in flight, then started again. At the end: every distinct photo has exactly
one output, no temporary file remains, every original is in the archive (or, for duplicates, still in the inbox), bad
files are in failed/ with their reason, and the database agrees with the folders. SIGTERM then ends it cleanly.

Every wait is a bounded poll with a deadline; the real built-in model runs on 48-96 px images on the CPU.
"""

from __future__ import annotations

import hashlib
import io
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
from PIL import Image as PILImage
from sqlalchemy import select

import storage
from storage import ImageState

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

REPO = Path(__file__).resolve().parents[2]
FOLDERS = ("", "a", "a/b", "c/d/e", "f g")
SETTLE = 1.5
"""Much longer than every pause of the slow writers (0.2 s): a file still being written must never be ready."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def photo(seed: int, fmt: str) -> bytes:
    rng = np.random.default_rng(seed)
    height, width = (int(v) for v in rng.integers(48, 97, size=2))
    base = np.linspace(0, 255, width, dtype=np.float32)[None, :, None] * np.ones((height, 1, 3), np.float32)
    pixels = np.clip(base + rng.normal(0, 20, (height, width, 3)), 0, 255).astype(np.uint8)
    buffer = io.BytesIO()
    PILImage.fromarray(pixels).save(buffer, format=fmt, **({"quality": 85} if fmt == "JPEG" else {}))
    return buffer.getvalue()


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass
class Drop:
    """What the test put into the inbox, by relative path."""

    photos: dict[str, bytes] = field(default_factory=dict)
    duplicates: dict[str, bytes] = field(default_factory=dict)
    bad: dict[str, bytes] = field(default_factory=dict)
    slow: dict[str, bytes] = field(default_factory=dict)

    @property
    def total(self) -> int:
        return len(self.photos) + len(self.duplicates) + len(self.bad) + len(self.slow)

    @property
    def distinct(self) -> dict[str, bytes]:
        return {**self.photos, **self.slow}


def make_drop() -> Drop:
    drop = Drop()
    for i in range(170):
        fmt = "PNG" if i % 2 else "JPEG"
        folder = FOLDERS[i % len(FOLDERS)]
        drop.photos[f"{folder}/img{i:03d}.{'png' if fmt == 'PNG' else 'jpg'}".lstrip("/")] = photo(i, fmt)
    originals = list(drop.photos.items())
    for i in range(12):
        name, content = originals[i * 7]
        drop.duplicates[f"dups/copy{i:02d}{Path(name).suffix}"] = content
    for i in range(5):
        drop.bad[f"{FOLDERS[i]}/notes{i}.jpg".lstrip("/")] = f"meeting notes {i}\n".encode() * 40
    for i in range(10):
        drop.bad[f"broken/cut{i}.jpg"] = photo(1000 + i, "JPEG")[: 300 + 40 * i]
    for i in range(3):
        drop.slow[f"slow/big{i}.jpg"] = photo(2000 + i, "JPEG")
    assert drop.total == 200
    return drop


class Daemon:
    """``python -m daemon run --config FILE`` with its output in a log file."""

    def __init__(self, config: Path, log: Path, port: int) -> None:
        self.config, self.log, self.port = config, log, port
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 120.0) -> None:
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        env.pop("NOTIFY_SOCKET", None)
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "daemon", "run", "--config", str(self.config)],
                cwd=REPO,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        wait_for(lambda: self.healthy() or self.exited(), timeout, "the daemon to answer /health")
        assert not self.exited(), self.log.read_text()[-3000:]

    def healthy(self) -> bool:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/api/v1/health", timeout=1) as reply:
                return reply.status == 200
        except OSError:
            return False

    def exited(self) -> bool:
        return self.process is not None and self.process.poll() is not None

    def signal(self, number: int) -> None:
        assert self.process is not None
        self.process.send_signal(number)

    def wait(self, timeout: float) -> int:
        assert self.process is not None
        return self.process.wait(timeout)

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(30)


def wait_for(condition: Callable[[], bool], timeout: float, what: str, interval: float = 0.2) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


@pytest.fixture
def site(tmp_path: Path) -> Iterator[tuple[Path, Daemon]]:
    port = free_port()
    config = tmp_path / "enhancerd.toml"
    config.write_text(
        f"""
data_dir = "var"
[[inbox]]
path = "inbox"
output = "outbox"
originals = "archive"
archive = "archive"
failed = "failed"
settle_seconds = {SETTLE}
[api]
host = "127.0.0.1"
port = {port}
token = "e2e-token"
[worker]
device = "cpu"
batch_size = 8
lease_seconds = 20
backoff_base_seconds = 1
[watcher]
rescan_seconds = 3
poll_interval_seconds = 0.5
[logging]
level = "INFO"
format = "json"
"""
    )
    daemon = Daemon(config, tmp_path / "daemon.log", port)
    try:
        yield tmp_path, daemon
    finally:
        daemon.kill()


def slow_writer(path: Path, content: bytes, stop: threading.Event, seconds: float = 3.0) -> None:
    """Write ``content`` in chunks with pauses shorter than the settle time."""
    chunks = 15
    step = -(-len(content) // chunks)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as stream:
        for start in range(0, len(content), step):
            stream.write(content[start : start + step])
            stream.flush()
            if stop.wait(seconds / chunks):
                return


def rows(tmp_path: Path) -> list[storage.Image]:
    db = storage.create_engine(f"sqlite:///{tmp_path / 'var' / 'enhancerd.db'}")
    try:
        with storage.session_factory(db, readonly=True)() as session:
            return list(session.scalars(select(storage.Image)))
    except Exception:
        return []
    finally:
        db.dispose()


def count(tmp_path: Path) -> Counter[ImageState]:
    return Counter(image.state for image in rows(tmp_path))


def files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_burst_crash_restart_and_clean_stop(site: tuple[Path, Daemon]) -> None:
    tmp_path, daemon = site
    inbox, outbox, archive, failed = (tmp_path / name for name in ("inbox", "outbox", "archive", "failed"))
    drop = make_drop()
    daemon.start()

    stop_writers = threading.Event()
    writers = [
        threading.Thread(target=slow_writer, args=(inbox / name, content, stop_writers), name=f"slow-{name}")
        for name, content in drop.slow.items()
    ]
    try:
        for thread in writers:
            thread.start()
        for name, content in {**drop.photos, **drop.duplicates, **drop.bad}.items():
            (inbox / name).parent.mkdir(parents=True, exist_ok=True)
            (inbox / name).write_bytes(content)

        # kill -9 while a batch is in flight, once a good part of the burst is done
        def mid_batch() -> bool:
            states = count(tmp_path)
            return states[ImageState.DONE] >= 40 and states[ImageState.PROCESSING] > 0

        # The batch seen in flight can commit before the signal lands (a loaded machine delays this process): then
        # the kill hit between batches, so start again and catch the next one.
        for _attempt in range(3):
            wait_for(mid_batch, 150, "a batch in flight after 40 images", interval=0.05)
            daemon.signal(signal.SIGKILL)
            daemon.wait(30)
            in_flight = count(tmp_path)[ImageState.PROCESSING]
            daemon.start()
            if in_flight > 0:
                break
        assert in_flight > 0, "three kills in a row missed every batch in flight"

        for thread in writers:
            thread.join(30)

        def settled() -> bool:
            states = count(tmp_path)
            return sum(states.values()) == drop.total and states[ImageState.QUEUED] + states[ImageState.PROCESSING] == 0

        wait_for(settled, 180, "every file to be processed")
    finally:
        stop_writers.set()
        for thread in writers:
            thread.join(10)

    # SIGTERM ends the daemon cleanly and in time
    daemon.signal(signal.SIGTERM)
    assert daemon.wait(60) == 0
    log = daemon.log.read_text()
    assert "received SIGTERM; stopping" in log and "enhancerd stopped" in log

    images = rows(tmp_path)
    by_state = Counter(image.state for image in images)
    distinct = {sha256(content) for content in drop.distinct.values()}
    assert by_state == {
        ImageState.DONE: len(distinct),
        ImageState.DUPLICATE: len(drop.distinct) + len(drop.duplicates) - len(distinct),
        ImageState.FAILED: len(drop.bad),
    }, by_state

    # every distinct photo has exactly one output, and outputs mirror the folders
    done = [image for image in images if image.state is ImageState.DONE]
    assert len({image.output_path for image in done}) == len(done)
    assert {image.content_hash for image in done} == distinct
    outputs = files(outbox)
    assert len(outputs) == len(done)
    for image in done:
        output = Path(image.output_path)
        assert output.exists(), image
        assert output.relative_to(outbox).parent.as_posix() == Path(image.relative_path).parent.as_posix()
        assert output.stem == Path(image.relative_path).stem  # no "-1": a crash never made a second output
        with PILImage.open(output) as enhanced:
            assert (enhanced.width, enhanced.height) == (image.width, image.height)

    # no original is lost: archived byte for byte (duplicates stay in the inbox), bad files in failed/ with a note
    archived = files(archive)
    for image in done:
        assert image.archive_path == str(archive / image.relative_path)
        assert sha256(archived[image.relative_path]) == image.content_hash
    remaining = files(inbox)
    for image in images:
        if image.state is ImageState.DUPLICATE:
            assert sha256(remaining[image.relative_path]) == image.content_hash
    assert len(remaining) == by_state[ImageState.DUPLICATE]
    failed_files = files(failed)
    for name, content in drop.bad.items():
        assert failed_files[name] == content
        note = failed_files[f"{name}.error.txt"].decode()
        row = next(image for image in images if image.relative_path == name)
        assert row.state is ImageState.FAILED and row.error and row.error in note
        assert row.archive_path == str(failed / name)
        assert ("truncated" in row.error) == name.startswith("broken/"), row.error
    assert len(failed_files) == 2 * len(drop.bad)

    # the slow writers were read once, complete: one row each, its hash that of the full content
    for name, content in drop.slow.items():
        matching = [image for image in images if image.relative_path == name]
        assert len(matching) == 1 and matching[0].content_hash == sha256(content)
        assert matching[0].state in (ImageState.DONE, ImageState.DUPLICATE)

    # no temporary files anywhere
    leftovers = [p for p in tmp_path.rglob("*") if p.is_file() and p.name.endswith(".tmp")]
    assert leftovers == []

    # the kill happened mid-batch: some image was claimed twice, and recovery said so
    assert any(image.attempts >= 2 for image in done)
    assert "recovered after an unclean stop" in log
