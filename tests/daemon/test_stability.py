"""The stability tracker, stepped with an injected clock and a fake file system: no sleeps."""

from __future__ import annotations

import errno
import stat
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from daemon.watch.stability import StabilityTracker, StableFile

SETTLE = 1.0
A = Path("/inbox/a.jpg")
B = Path("/inbox/sub/b.jpg")


@dataclass(frozen=True)
class FakeStat:
    st_mode: int
    st_size: int
    st_mtime_ns: int
    st_dev: int = 1
    st_ino: int = 0


@dataclass
class FakeFS:
    """Paths -> [size, mtime_ns, inode]; mtime advances by one second on each write."""

    files: dict[Path, list[int]] = field(default_factory=dict)
    dirs: set[Path] = field(default_factory=set)
    errors: dict[Path, OSError] = field(default_factory=dict)
    next_ino: int = 100
    clock_ns: int = 1_000_000_000
    stats: int = 0

    def write(self, path: Path, size: int) -> None:
        self.clock_ns += 1_000_000_000
        if path not in self.files:
            self.next_ino += 1
            self.files[path] = [0, 0, self.next_ino]
        self.files[path][:2] = [size, self.clock_ns]

    def append(self, path: Path, size: int) -> None:
        self.write(path, self.files[path][0] + size)

    def move(self, src: Path, dst: Path) -> None:
        self.files[dst] = self.files.pop(src)

    def remove(self, path: Path) -> None:
        del self.files[path]

    def stat(self, path: Path) -> FakeStat:
        self.stats += 1
        if path in self.errors:
            raise self.errors[path]
        if path in self.dirs:
            return FakeStat(stat.S_IFDIR | 0o755, 4096, 0)
        if path not in self.files:
            raise FileNotFoundError(errno.ENOENT, "no such file", str(path))
        size, mtime, ino = self.files[path]
        return FakeStat(stat.S_IFREG | 0o644, size, mtime, st_ino=ino)


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def fs() -> FakeFS:
    return FakeFS()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def tracker(fs: FakeFS, clock: Clock) -> StabilityTracker:
    return StabilityTracker(SETTLE, clock=clock, stat=fs.stat)


def paths(ready: list[StableFile]) -> list[Path]:
    return [item.path for item in ready]


def test_ready_only_after_the_settle_time(fs: FakeFS, tracker: StabilityTracker) -> None:
    fs.write(A, 10)
    assert tracker.observe(A, 0.0) is True
    assert tracker.poll(0.5) == []
    assert tracker.poll(0.99) == []
    ready = tracker.poll(1.0)
    assert ready == [StableFile(A, 10, fs.files[A][1])]
    assert tracker.pending == 0


def test_wait_restarts_on_every_change(fs: FakeFS, tracker: StabilityTracker) -> None:
    fs.write(A, 10)
    tracker.observe(A, 0.0)
    fs.append(A, 10)
    assert tracker.poll(0.8) == []  # the change is noticed here: the wait starts again
    assert tracker.poll(1.7) == []
    fs.write(A, 20)  # same size, new mtime: still a change
    assert tracker.poll(1.75) == []
    assert tracker.poll(2.7) == []
    assert paths(tracker.poll(2.75)) == [A]


def test_observe_of_an_unchanged_pending_file_does_not_restart_the_wait(fs: FakeFS, tracker: StabilityTracker) -> None:
    fs.write(A, 10)
    tracker.observe(A, 0.0)
    assert tracker.observe(A, 0.9) is False  # e.g. a "closed" event or a rescan hit
    assert paths(tracker.poll(1.0)) == [A]


def test_observe_notices_changes_without_a_poll(fs: FakeFS, tracker: StabilityTracker) -> None:
    fs.write(A, 10)
    tracker.observe(A, 0.0)
    fs.append(A, 1)
    tracker.observe(A, 0.5)
    assert tracker.poll(1.25) == []
    assert paths(tracker.poll(1.5)) == [A]


def test_slow_writer_in_chunks_is_never_reported_early(fs: FakeFS, tracker: StabilityTracker) -> None:
    fs.write(A, 0)
    tracker.observe(A, 0.0)
    reported_at: list[float] = []
    last_write = 0.0
    for step in range(1, 121):  # polls every 0.1 s for 12 s; chunks every 0.7 s for 8 s
        now = step * 0.1
        if now <= 8.0 and step % 7 == 0:
            fs.append(A, 64 * 1024)
            last_write = now
        if tracker.poll(now):
            reported_at.append(now)
    assert len(reported_at) == 1
    assert reported_at[0] >= last_write + SETTLE - 1e-9
    assert reported_at[0] <= last_write + SETTLE + 0.1 + 1e-9


@settings(max_examples=60, deadline=None)
@given(st.lists(st.floats(min_value=0.01, max_value=0.95 * SETTLE), min_size=1, max_size=30))
def test_any_writer_pausing_less_than_settle_is_reported_once_after_its_last_write(gaps: list[float]) -> None:
    fs, clock = FakeFS(), Clock()
    tracker = StabilityTracker(SETTLE, clock=clock, stat=fs.stat)
    fs.write(A, 1)
    tracker.observe(A, 0.0)
    writes = [0.0]
    for gap in gaps:
        writes.append(writes[-1] + gap)
    times = sorted({*writes, *(w + d for w in writes for d in (0.5 * SETTLE, SETTLE, 1.5 * SETTLE))})
    reported: list[float] = []
    for now in times:
        if now in writes[1:]:
            fs.append(A, 1)
            tracker.observe(A, now)  # the event of the write
        if tracker.poll(now):
            reported.append(now)
    assert len(reported) == 1
    assert reported[0] >= writes[-1] + SETTLE - 1e-6


def test_vanished_file_is_dropped(fs: FakeFS, tracker: StabilityTracker) -> None:
    fs.write(A, 10)
    tracker.observe(A, 0.0)
    fs.remove(A)
    assert tracker.poll(2.0) == []
    assert tracker.pending == 0
    assert tracker.observe(A, 2.5) is False  # an event for a file already gone does nothing
    assert tracker.pending == 0


def test_reported_once_then_again_only_after_a_change(fs: FakeFS, tracker: StabilityTracker) -> None:
    fs.write(A, 10)
    tracker.observe(A, 0.0)
    assert paths(tracker.poll(1.0)) == [A]
    assert tracker.observe(A, 2.0) is False  # the rescan sees it again
    assert tracker.poll(5.0) == []
    fs.append(A, 5)  # edited in place
    assert tracker.observe(A, 6.0) is True
    assert tracker.poll(6.5) == []
    assert [(s.path, s.size) for s in tracker.poll(7.0)] == [(A, 15)]


def test_file_moved_while_settling_is_reported_once_at_its_new_place(fs: FakeFS, tracker: StabilityTracker) -> None:
    fs.write(A, 10)
    tracker.observe(A, 0.0)
    fs.move(A, B)
    tracker.observe(B, 0.5)  # the move event names the destination only
    reported = [p for t in (0.6, 1.0, 1.4, 1.5, 3.0, 9.0) for p in paths(tracker.poll(t))]
    assert reported == [B]


def test_reported_file_moved_within_the_inbox_is_not_reported_again(fs: FakeFS, tracker: StabilityTracker) -> None:
    fs.write(A, 10)
    tracker.observe(A, 0.0)
    assert paths(tracker.poll(1.0)) == [A]
    fs.move(A, B)
    assert tracker.observe(B, 2.0) is False
    assert tracker.poll(9.0) == []
    tracker.retain({B})  # a rescan saw it at its new place: still remembered
    assert tracker.observe(B, 10.0) is False
    assert tracker.poll(20.0) == []


def test_file_moved_into_the_inbox_with_many_events_is_reported_once(fs: FakeFS, tracker: StabilityTracker) -> None:
    fs.write(A, 10)  # complete before it arrives
    reported: list[Path] = []
    for now in (0.0, 0.01, 0.02, 0.5, 1.2, 1.3, 4.0):  # moved, created, the folder listing, two rescans...
        tracker.observe(A, now)
        reported += paths(tracker.poll(now))
    assert reported == [A]


def test_retain_forgets_files_that_left(fs: FakeFS, tracker: StabilityTracker) -> None:
    fs.write(A, 10)
    tracker.observe(A, 0.0)
    assert paths(tracker.poll(1.0)) == [A]
    saved = list(fs.files[A])
    fs.remove(A)  # archived by the worker
    tracker.retain(set())
    fs.files[A] = saved  # the very same file comes back later (moved back in)
    assert tracker.observe(A, 5.0) is True
    assert paths(tracker.poll(6.0)) == [A]


def test_a_new_file_at_a_reported_path_is_reported(fs: FakeFS, tracker: StabilityTracker) -> None:
    fs.write(A, 10)
    tracker.observe(A, 0.0)
    assert paths(tracker.poll(1.0)) == [A]
    fs.remove(A)
    fs.write(A, 10)  # a new inode
    assert tracker.observe(A, 2.0) is True
    assert paths(tracker.poll(3.0)) == [A]


def test_forget_reports_again(fs: FakeFS, tracker: StabilityTracker) -> None:
    fs.write(A, 10)
    tracker.observe(A, 0.0)
    assert paths(tracker.poll(1.0)) == [A]
    tracker.forget(A)
    assert tracker.observe(A, 2.0) is True
    assert paths(tracker.poll(3.0)) == [A]


def test_known_files_are_not_reported(fs: FakeFS, clock: Clock) -> None:
    asked: list[StableFile] = []

    def known(item: StableFile) -> bool:
        asked.append(item)
        return item.path == A

    tracker = StabilityTracker(SETTLE, clock=clock, stat=fs.stat, known=known)
    fs.write(A, 10)
    fs.write(B, 10)
    tracker.observe(A, 0.0)
    tracker.observe(B, 0.0)
    assert paths(tracker.poll(1.0)) == [B]
    assert sorted(item.path for item in asked) == [A, B]
    assert tracker.observe(A, 2.0) is False  # known counts as reported
    assert tracker.poll(5.0) == []


def test_empty_files_wait_until_they_have_content(fs: FakeFS, tracker: StabilityTracker) -> None:
    fs.write(A, 0)
    tracker.observe(A, 0.0)
    assert tracker.poll(10.0) == []
    assert tracker.pending == 1
    fs.write(A, 100)
    assert tracker.poll(10.5) == []
    assert paths(tracker.poll(11.5)) == [A]


def test_stat_errors_restart_the_wait(fs: FakeFS, tracker: StabilityTracker) -> None:
    fs.write(A, 10)
    tracker.observe(A, 0.0)
    fs.errors[A] = OSError(errno.EIO, "I/O error")
    assert tracker.poll(1.0) == []
    del fs.errors[A]
    assert tracker.poll(1.5) == []
    assert paths(tracker.poll(2.0)) == [A]


def test_folders_and_special_files_are_not_tracked(fs: FakeFS, tracker: StabilityTracker) -> None:
    directory = Path("/inbox/album.jpg")
    fs.dirs.add(directory)
    assert tracker.observe(directory, 0.0) is False
    assert tracker.pending == 0


def test_clock_is_used_when_now_is_omitted(fs: FakeFS, clock: Clock, tracker: StabilityTracker) -> None:
    fs.write(A, 10)
    clock.now = 100.0
    tracker.observe(A)
    clock.now = 100.9
    assert tracker.poll() == []
    clock.now = 101.0
    assert paths(tracker.poll()) == [A]


def test_without_inode_numbers_paths_identify_files(clock: Clock) -> None:
    fs = FakeFS()
    fs.next_ino = -1  # the first file gets inode 0: "no inode numbers"
    tracker = StabilityTracker(SETTLE, clock=clock, stat=fs.stat)
    fs.write(A, 10)
    assert fs.files[A][2] == 0
    tracker.observe(A, 0.0)
    assert paths(tracker.poll(1.0)) == [A]
    assert tracker.observe(A, 2.0) is False


def test_with_the_real_file_system(tmp_path: Path) -> None:
    clock = Clock()
    tracker = StabilityTracker(0.5, clock=clock)
    path = tmp_path / "x.jpg"
    path.write_bytes(b"abc")
    assert tracker.observe(path, 0.0)
    with path.open("ab") as f:
        f.write(b"defg")
    assert tracker.poll(0.5) == []
    ready = tracker.poll(1.0)
    assert [(s.path, s.size, s.mtime_ns) for s in ready] == [(path, 7, path.stat().st_mtime_ns)]


def test_negative_settle_is_refused() -> None:
    with pytest.raises(ValueError):
        StabilityTracker(-1.0)


def test_decimal_steps_are_not_defeated_by_float_rounding(fs: FakeFS, tracker: StabilityTracker) -> None:
    fs.write(A, 10)
    tracker.observe(A, 0.9)
    assert tracker.poll(1.8) == []
    assert paths(tracker.poll(1.9)) == [A]  # 1.9 - 0.9 is 0.9999999999999999 in binary
