"""The inbox watcher on real temporary folders, with inotify and with polling.

Steps that depend on real events run in bounded loops with deadlines; steps that do not (scans, settle times) are
driven with explicit ``now`` values, so they need no sleeping at all.
"""

from __future__ import annotations

import errno
import os
import queue
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from watchdog.events import (
    DirCreatedEvent,
    DirModifiedEvent,
    DirMovedEvent,
    FileClosedEvent,
    FileCreatedEvent,
    FileDeletedEvent,
    FileModifiedEvent,
    FileMovedEvent,
    FileOpenedEvent,
    FileSystemEvent,
)
from watchdog.observers.api import BaseObserver
from watchdog.observers.inotify import InotifyObserver

from daemon.watch import (
    InboxWatcher,
    QueueingHandler,
    ReadyFile,
    RejectedFile,
    WatchedInbox,
    WatcherOptions,
    WatcherThread,
    WatchMode,
)
from daemon.watch.handler import event_path

SETTLE = 0.2
DEADLINE = 10.0
OPTIONS = WatcherOptions(
    rescan_seconds=0,  # off unless a test wants it: the events alone must do the job
    poll_interval_seconds=0.05,
    restart_backoff_seconds=0.05,
    restart_backoff_max_seconds=0.05,
)
MODES = [WatchMode.INOTIFY, WatchMode.POLLING]

# watchdog 7 registers the same inotify watch twice when a folder and its subfolder appear at once (mkdir -p), and
# says so with a RuntimeWarning on its reader thread; it is harmless (the same callback is stored again).
pytestmark = pytest.mark.filterwarnings("ignore:Callback with id .* already exists:RuntimeWarning")
MakeWatcher = Callable[..., InboxWatcher]


class DroppingQueue(queue.SimpleQueue):  # type: ignore[type-arg]
    """Loses every event the observers send, as an inotify overflow would; ``inject`` adds one by hand."""

    def put(self, item: tuple[str, str], block: bool = True, timeout: float | None = None) -> None:
        pass

    def inject(self, item: tuple[str, str]) -> None:
        super().put(item)


@pytest.fixture(autouse=True)
def every_thread_joined() -> Iterator[None]:
    """Stricter than the suite-wide check: watchdog's threads are daemon threads, and they must be joined too."""
    before = set(threading.enumerate())
    yield
    left = [t.name for t in threading.enumerate() if t not in before and t.is_alive()]
    assert not left, f"threads still running: {left}"


@pytest.fixture
def make_watcher() -> Iterator[MakeWatcher]:
    made: list[InboxWatcher] = []

    def make(*inboxes: WatchedInbox, **kwargs: object) -> InboxWatcher:
        kwargs.setdefault("options", OPTIONS)
        watcher = InboxWatcher(list(inboxes), **kwargs)  # type: ignore[arg-type]
        made.append(watcher)
        return watcher

    yield make
    for watcher in made:
        watcher.stop()


def inbox(tmp_path: Path, mode: WatchMode = WatchMode.INOTIFY, name: str = "in", **kwargs: object) -> WatchedInbox:
    root = tmp_path / name
    root.mkdir(exist_ok=True)
    return WatchedInbox(name, root, polling=mode is WatchMode.POLLING, settle_seconds=SETTLE, **kwargs)  # type: ignore[arg-type]


def write(root: Path, relative: str, data: bytes = b"\xff\xd8\xff\xe0 image") -> Path:
    path = root / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def run_until(
    watcher: InboxWatcher, done: Callable[[list[ReadyFile]], bool], got: list[ReadyFile] | None = None
) -> list[ReadyFile]:
    """Step the watcher on the real clock until ``done(got)`` or the deadline."""
    got = [] if got is None else got
    deadline = time.monotonic() + DEADLINE
    while time.monotonic() < deadline:
        got += watcher.loop_once()
        if done(got):
            return got
        time.sleep(0.01)
    raise AssertionError(f"deadline passed; reported so far: {[f.relative for f in got]}")


def relatives(files: list[ReadyFile]) -> list[str]:
    return sorted(f.relative.as_posix() for f in files)


def has(*names: str) -> Callable[[list[ReadyFile]], bool]:
    return lambda got: set(names) <= {f.relative.as_posix() for f in got}


@pytest.mark.parametrize("mode", MODES)
def test_new_files_are_reported_once_and_ignored_names_never(
    tmp_path: Path, mode: WatchMode, make_watcher: MakeWatcher
) -> None:
    box = inbox(tmp_path, mode)
    watcher = make_watcher(box)
    watcher.start()
    assert watcher.loop_once() == []  # startup scan of an empty inbox
    # The ignored names are written first: once the good files are reported, their events have been drained.
    for name in [".hidden.jpg", "Thumbs.db", "x.jpg.part", "@eaDir/y.jpg", "notes.txt", "sub/._z.jpg", "~$w.jpg"]:
        write(box.root, name)
    a = write(box.root, "a.jpg")
    write(box.root, "sub/deeper/b.png", b"png" * 100)

    got = run_until(watcher, has("a.jpg", "sub/deeper/b.png"))

    assert relatives(got) == ["a.jpg", "sub/deeper/b.png"]
    first = next(f for f in got if f.path == a)
    assert first == ReadyFile("in", box.root, a, Path("a.jpg"), a.stat().st_size, a.stat().st_mtime_ns, None)
    (health,) = watcher.health()
    assert health.pending == 0  # nothing ignored is even tracked
    assert health.mode is mode and health.alive
    assert health.polling_reason == ("configured" if mode is WatchMode.POLLING else None)
    assert health.restarts == 0 and health.handler_errors == 0


@pytest.mark.parametrize("mode", MODES)
def test_folder_moved_into_the_inbox_is_reported_whole(
    tmp_path: Path, mode: WatchMode, make_watcher: MakeWatcher
) -> None:
    box = inbox(tmp_path, mode)
    staging = tmp_path / "staging"
    for name in ["album/1.jpg", "album/2.jpg", "album/nested/3.tif", "album/.thumbs/4.jpg"]:
        write(staging, name)
    watcher = make_watcher(box)
    watcher.start()
    watcher.loop_once()

    os.rename(staging / "album", box.root / "album")
    got = run_until(watcher, has("album/1.jpg", "album/2.jpg", "album/nested/3.tif"))

    assert relatives(got) == ["album/1.jpg", "album/2.jpg", "album/nested/3.tif"]


def test_a_folder_event_lists_every_file_inside_at_once(tmp_path: Path, make_watcher: MakeWatcher) -> None:
    box = inbox(tmp_path)
    events = DroppingQueue()
    watcher = make_watcher(box, events=events)
    watcher.start()
    watcher.loop_once(0.0)
    names = ["album/1.jpg", "album/a/2.jpg", "album/a/b/3.png", "album/@eaDir/4.jpg", "album/a/5.txt"]
    for name in names:
        write(box.root, name)  # written before any watch on album/ could exist: their own events are lost

    events.inject(("in", str(box.root / "album")))
    assert watcher.loop_once(1.0) == []
    assert watcher.health()[0].pending == 3  # listed at the first drain, not at the next rescan
    got = watcher.loop_once(1.0 + SETTLE)
    assert relatives(got) == ["album/1.jpg", "album/a/2.jpg", "album/a/b/3.png"]


@pytest.mark.parametrize("mode", MODES)
def test_startup_scan_reports_files_already_there(tmp_path: Path, mode: WatchMode, make_watcher: MakeWatcher) -> None:
    box = inbox(tmp_path, mode)
    write(box.root, "before.jpg")
    write(box.root, "old/nested/before.png")
    watcher = make_watcher(box)
    watcher.start()

    got = run_until(watcher, has("before.jpg", "old/nested/before.png"))

    assert relatives(got) == ["before.jpg", "old/nested/before.png"]
    (health,) = watcher.health()
    assert health.last_rescan is not None
    assert health.rescan_finds == 0  # the startup scan is not a "rescan find"


def test_rescan_finds_a_file_that_arrived_without_an_event(tmp_path: Path, make_watcher: MakeWatcher) -> None:
    box = inbox(tmp_path)
    options = WatcherOptions(rescan_seconds=1.0, poll_interval_seconds=0.05)
    watcher = make_watcher(box, options=options, events=DroppingQueue())
    watcher.start()
    assert watcher.loop_once(0.0) == []
    write(box.root, "lost/event.jpg")

    assert watcher.loop_once(0.5) == []
    assert watcher.health()[0].pending == 0  # no event, no rescan yet
    assert watcher.loop_once(1.0) == []  # the rescan finds it; it must still settle
    assert watcher.health()[0].rescan_finds == 1
    assert relatives(watcher.loop_once(1.0 + SETTLE)) == ["lost/event.jpg"]
    assert watcher.loop_once(2.0) == []  # the next rescan does not report it again
    assert watcher.loop_once(3.0) == []
    assert watcher.health()[0].rescan_finds == 1


@pytest.mark.parametrize("mode", MODES)
def test_dead_observer_is_restarted_counted_and_followed_by_a_rescan(
    tmp_path: Path, mode: WatchMode, make_watcher: MakeWatcher
) -> None:
    box = inbox(tmp_path, mode)
    watcher = make_watcher(box)
    watcher.start()
    watcher.loop_once()
    dead = watcher.inbox_observer("in").observer
    assert dead is not None
    dead.stop()
    dead.join(5)
    assert not watcher.health()[0].alive
    assert not watcher.alive()
    write(box.root, "while-dead.jpg")  # its event is lost with the observer

    got = watcher.loop_once()

    (health,) = watcher.health()
    assert health.restarts == 1 and health.alive and health.mode is mode
    assert watcher.inbox_observer("in").observer is not dead
    write(box.root, "after.jpg")
    got = run_until(watcher, has("while-dead.jpg", "after.jpg"), got)
    assert relatives(got) == ["after.jpg", "while-dead.jpg"]


@pytest.mark.parametrize("mode", MODES)
def test_inbox_folder_deleted_and_recreated_is_watched_again(
    tmp_path: Path, mode: WatchMode, make_watcher: MakeWatcher
) -> None:
    box = inbox(tmp_path, mode)
    watcher = make_watcher(box)
    watcher.start()
    watcher.loop_once()
    box.root.rmdir()
    deadline = time.monotonic() + DEADLINE
    while watcher.health()[0].last_error is None and time.monotonic() < deadline:  # the emitter stops; a restart fails
        watcher.loop_once()
        time.sleep(0.01)
    (health,) = watcher.health()
    assert not health.alive and health.last_error is not None and "missing" in health.last_error

    write(box.root, "back.jpg")
    assert relatives(run_until(watcher, has("back.jpg"))) == ["back.jpg"]
    (health,) = watcher.health()
    assert health.alive and health.restarts >= 1 and health.last_error is None


class _NoInotify(InotifyObserver):
    """An inotify observer whose start fails the way it does once fs.inotify.max_user_instances is reached."""

    def on_thread_start(self) -> None:
        raise OSError(errno.EMFILE, "inotify instance limit reached")


def _no_watches() -> BaseObserver:
    raise OSError(errno.ENOSPC, "inotify watch limit reached")


@pytest.mark.parametrize(("native", "hint"), [(_no_watches, "max_user_watches"), (_NoInotify, "max_user_instances")])
def test_inotify_failure_falls_back_to_polling_with_the_reason(
    tmp_path: Path, make_watcher: MakeWatcher, native: Callable[[], BaseObserver], hint: str
) -> None:
    box = inbox(tmp_path)
    watcher = make_watcher(box, native=native)
    watcher.start()

    (health,) = watcher.health()
    assert health.mode is WatchMode.POLLING and health.alive
    assert health.polling_reason is not None and hint in health.polling_reason
    write(box.root, "still/works.jpg")
    assert relatives(run_until(watcher, has("still/works.jpg"))) == ["still/works.jpg"]


def test_missing_inbox_folder_is_reported_and_retried(tmp_path: Path, make_watcher: MakeWatcher) -> None:
    box = WatchedInbox("late", tmp_path / "late", settle_seconds=SETTLE)
    watcher = make_watcher(box, clock=lambda: 0.0)
    watcher.start()
    (health,) = watcher.health()
    assert not health.alive and health.mode is None
    assert health.last_error is not None and "missing" in health.last_error

    assert watcher.loop_once(0.01) == []  # within the backoff: no attempt
    assert watcher.health()[0].restarts == 0
    box.root.mkdir()
    write(box.root, "x.jpg")
    assert watcher.loop_once(1.0) == []
    (health,) = watcher.health()
    assert health.alive and health.restarts == 1 and health.last_error is None
    assert relatives(watcher.loop_once(1.0 + SETTLE)) == ["x.jpg"]


@pytest.mark.parametrize("mode", MODES)
def test_file_moved_within_the_inbox_is_handled_once(
    tmp_path: Path, mode: WatchMode, make_watcher: MakeWatcher
) -> None:
    box = inbox(tmp_path, mode)
    watcher = make_watcher(box)
    watcher.start()
    write(box.root, "a.jpg")
    got = run_until(watcher, has("a.jpg"))
    (box.root / "sub").mkdir()
    os.rename(box.root / "a.jpg", box.root / "sub" / "renamed.jpg")
    write(box.root, "marker.jpg")  # reported after the move's events were drained

    got = run_until(watcher, has("marker.jpg"), got)

    assert relatives(got) == ["a.jpg", "marker.jpg"]


def test_sniff_rejects_non_images_and_names_the_format(tmp_path: Path, make_watcher: MakeWatcher) -> None:
    box = inbox(tmp_path)
    write(box.root, "good.jpg", b"\xff\xd8\xff rest")
    write(box.root, "fake.jpg", b"<html>not a photo</html>")
    write(box.root, "locked.jpg", b"\xff\xd8\xff rest")

    def sniff(path: Path) -> str | None:
        if path.name == "locked.jpg":
            raise PermissionError(errno.EACCES, "still locked by the writer")
        return "jpeg" if path.read_bytes().startswith(b"\xff\xd8\xff") else None

    rejected: list[RejectedFile] = []
    watcher = make_watcher(box, sniff=sniff, on_rejected=rejected.append, events=DroppingQueue())
    watcher.start()
    assert watcher.loop_once(0.0) == []

    got = watcher.loop_once(SETTLE)

    assert {f.relative.as_posix(): f.format for f in got} == {"good.jpg": "jpeg", "locked.jpg": None}
    assert [(r.file.relative.as_posix(), "image" in r.reason) for r in rejected] == [("fake.jpg", True)]
    assert watcher.loop_once(10.0) == []  # rejected files are not rejected again on every rescan
    assert len(rejected) == 1


def test_a_file_unreadable_for_now_is_not_rejected(tmp_path: Path, make_watcher: MakeWatcher) -> None:
    box = inbox(tmp_path)
    write(box.root, "locked.jpg")
    rejected: list[RejectedFile] = []

    def sniff(path: Path) -> str | None:
        # Unreadable right now (root ignores file modes, so a folder stands in for a locked file: reading it raises).
        path.unlink()
        path.mkdir()
        return None  # core.imageio.sniff_format never raises: None for "cannot read" as for "not an image"

    watcher = make_watcher(box, sniff=sniff, on_rejected=rejected.append, events=DroppingQueue())
    watcher.start()
    watcher.loop_once(0.0)
    assert relatives(watcher.loop_once(SETTLE)) == ["locked.jpg"]  # handed on: the pipeline classifies the error
    assert rejected == []


def test_known_files_are_not_reported(tmp_path: Path, make_watcher: MakeWatcher) -> None:
    box = inbox(tmp_path)
    write(box.root, "old.jpg")
    write(box.root, "new.jpg")
    asked: list[str] = []

    def known(file: ReadyFile) -> bool:
        asked.append(file.relative.as_posix())
        return file.relative == Path("old.jpg")

    watcher = make_watcher(box, known=known, events=DroppingQueue())
    watcher.start()
    watcher.loop_once(0.0)
    assert relatives(watcher.loop_once(SETTLE)) == ["new.jpg"]
    assert sorted(asked) == ["new.jpg", "old.jpg"]


def test_requeued_files_are_reported_again(tmp_path: Path, make_watcher: MakeWatcher) -> None:
    box = inbox(tmp_path)
    write(box.root, "a.jpg")
    now = [0.0]
    watcher = make_watcher(box, events=DroppingQueue(), clock=lambda: now[0])
    watcher.start()
    watcher.loop_once(0.0)
    got = watcher.loop_once(SETTLE)
    assert relatives(got) == ["a.jpg"]
    now[0] = 1.0
    watcher.requeue(got)
    assert watcher.loop_once(1.0) == []
    assert watcher.loop_once(1.0 + SETTLE) == got


def test_several_inboxes_are_kept_apart(tmp_path: Path, make_watcher: MakeWatcher) -> None:
    one, two = inbox(tmp_path, name="one"), inbox(tmp_path, WatchMode.POLLING, name="two")
    watcher = make_watcher(one, two)
    watcher.start()
    write(one.root, "x.jpg")
    write(two.root, "x.jpg")
    got = run_until(watcher, lambda g: len(g) >= 2)
    assert sorted((f.inbox, f.root, f.relative.as_posix()) for f in got) == [
        ("one", one.root, "x.jpg"),
        ("two", two.root, "x.jpg"),
    ]
    assert [(h.name, h.mode) for h in watcher.health()] == [("one", WatchMode.INOTIFY), ("two", WatchMode.POLLING)]


def test_stop_joins_everything_and_is_idempotent(tmp_path: Path, make_watcher: MakeWatcher) -> None:
    watcher = make_watcher(inbox(tmp_path), inbox(tmp_path, WatchMode.POLLING, name="p"))
    watcher.start()
    watcher.stop()
    watcher.stop()
    assert not any(h.alive for h in watcher.health())
    with pytest.raises(RuntimeError):
        watcher.loop_once()


def test_invalid_inboxes_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="two inboxes"):
        InboxWatcher([WatchedInbox("a", tmp_path), WatchedInbox("a", tmp_path / "b")])
    with pytest.raises(ValueError, match="settle"):
        WatchedInbox("a", tmp_path, settle_seconds=-1)
    with pytest.raises(ValueError, match="empty"):
        WatchedInbox("a", tmp_path, extra_ignores=("",))


@pytest.mark.parametrize(
    ("event", "expected"),
    [
        (FileCreatedEvent("/i/a.jpg"), "/i/a.jpg"),
        (FileModifiedEvent("/i/a.jpg"), "/i/a.jpg"),
        (FileClosedEvent("/i/a.jpg"), "/i/a.jpg"),
        (FileMovedEvent("/i/a.part", "/i/a.jpg"), "/i/a.jpg"),
        (DirCreatedEvent("/i/album"), "/i/album"),
        (DirMovedEvent("/x/album", "/i/album"), "/i/album"),
        (DirModifiedEvent("/i"), None),
        (FileDeletedEvent("/i/a.jpg"), None),
        (FileOpenedEvent("/i/a.jpg"), None),
    ],
)
def test_event_paths(event: FileSystemEvent, expected: str | None) -> None:
    assert event_path(event) == expected


def test_handler_never_raises_and_counts_errors() -> None:
    def broken(_: tuple[str, str]) -> None:
        raise RuntimeError("queue gone")

    handler = QueueingHandler("in", broken)
    handler.dispatch(FileCreatedEvent("/i/a.jpg"))
    handler.dispatch(FileCreatedEvent("/i/b.jpg"))
    assert handler.errors == 2

    sink: queue.SimpleQueue[tuple[str, str]] = queue.SimpleQueue()
    QueueingHandler("in", sink.put).dispatch(FileMovedEvent("/i/a.part", "/i/a.jpg"))
    assert sink.get_nowait() == ("in", "/i/a.jpg")


def test_watcher_thread_delivers_requeues_after_a_failed_callback_and_joins(
    tmp_path: Path, make_watcher: MakeWatcher
) -> None:
    box = inbox(tmp_path)
    watcher = make_watcher(box)
    calls: list[list[str]] = []
    delivered = threading.Event()

    def on_ready(files: list[ReadyFile]) -> None:
        calls.append(relatives(files))
        if len(calls) == 1:
            raise RuntimeError("database is locked")
        delivered.set()

    runner = WatcherThread(watcher, on_ready, interval=0.02)
    runner.start()
    try:
        assert runner.is_alive() and watcher.alive()
        write(box.root, "a.jpg")
        assert delivered.wait(DEADLINE)
    finally:
        assert runner.stop()
    assert calls == [["a.jpg"], ["a.jpg"]]
    assert runner.failures == 1 and runner.last_iteration is not None
    assert not runner.is_alive() and not watcher.alive()
