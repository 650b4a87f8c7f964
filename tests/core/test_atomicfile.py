"""Atomic replacement: the new file or the old one, never half of either, and no temporary file left behind."""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import BinaryIO

import pytest

from core.atomicfile import (
    TEMP_NAME,
    atomic_copy,
    atomic_write,
    atomic_write_bytes,
    atomic_write_text,
    fsync_folder,
    temp_path,
)


def _entries(folder: Path) -> list[str]:
    return sorted(path.name for path in folder.iterdir())


def test_write_creates_the_file_and_nothing_else(tmp_path: Path) -> None:
    target = tmp_path / "a.bin"
    assert atomic_write(target, lambda stream: stream.write(b"new")) == target
    assert target.read_bytes() == b"new"
    assert _entries(tmp_path) == ["a.bin"]


def test_write_replaces_an_existing_file(tmp_path: Path) -> None:
    target = tmp_path / "a.txt"
    target.write_text("old")
    atomic_write_text(target, "new\n")
    assert target.read_text() == "new\n"
    assert _entries(tmp_path) == ["a.txt"]


def test_a_failing_writer_leaves_the_old_file_and_no_temporary_file(tmp_path: Path) -> None:
    target = tmp_path / "a.txt"
    target.write_text("old")

    def half_then_fail(stream: BinaryIO) -> None:
        stream.write(b"half of the new con")
        raise RuntimeError("disk on fire")

    with pytest.raises(RuntimeError, match="disk on fire"):
        atomic_write(target, half_then_fail)
    assert target.read_text() == "old"
    assert _entries(tmp_path) == ["a.txt"]


def test_a_failing_check_sees_the_complete_file_and_replaces_nothing(tmp_path: Path) -> None:
    target = tmp_path / "config.toml"
    target.write_text("old")
    seen: list[tuple[str, str]] = []

    def refuse(written: Path) -> None:
        seen.append((written.name, written.read_text()))
        raise ValueError("does not load")

    with pytest.raises(ValueError, match="does not load"):
        atomic_write_text(target, "new", check=refuse)
    assert target.read_text() == "old"
    assert _entries(tmp_path) == ["config.toml"]
    ((name, content),) = seen
    assert TEMP_NAME.match(name) and content == "new"


def test_a_missing_folder_raises_and_creates_nothing(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        atomic_write_bytes(tmp_path / "missing" / "a.bin", b"x")
    assert _entries(tmp_path) == []


def test_the_mode_is_applied_through_the_umask(tmp_path: Path) -> None:
    private = atomic_write_text(tmp_path / "secret", "token", mode=0o600)
    assert stat.S_IMODE(private.stat().st_mode) == 0o600
    ordinary = atomic_write_bytes(tmp_path / "plain", b"x")
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(ordinary.stat().st_mode) == 0o666 & ~umask


def test_copy_copies_bytes_into_a_new_folder(tmp_path: Path) -> None:
    source = tmp_path / "source.jpg"
    source.write_bytes(bytes(range(256)) * 5000)  # more than one copy chunk
    target = tmp_path / "out" / "deep" / "copy.jpg"
    assert atomic_copy(source, target) == target
    assert target.read_bytes() == source.read_bytes()
    assert _entries(target.parent) == ["copy.jpg"]


def test_copy_of_a_missing_source_leaves_the_old_target(tmp_path: Path) -> None:
    target = tmp_path / "copy.jpg"
    target.write_bytes(b"old")
    with pytest.raises(FileNotFoundError):
        atomic_copy(tmp_path / "gone.jpg", target)
    assert target.read_bytes() == b"old"
    assert _entries(tmp_path) == ["copy.jpg"]


@pytest.mark.parametrize("name", ["photo.jpg", ".hidden", "a.b.c.png", "x"])
def test_temporary_names_are_hidden_tmp_files_that_recovery_recognises(tmp_path: Path, name: str) -> None:
    """The watcher skips ``.*`` and ``*.tmp``; the worker's recovery deletes names matching TEMP_NAME."""
    temporary = temp_path(tmp_path / name)
    assert temporary.parent == tmp_path
    assert temporary.name.startswith(".") and temporary.name.endswith(".tmp")
    assert TEMP_NAME.match(temporary.name)
    assert not TEMP_NAME.match(name)
    assert temp_path(tmp_path / name) != temporary


def test_fsync_folder_tolerates_a_missing_folder(tmp_path: Path) -> None:
    fsync_folder(tmp_path)
    fsync_folder(tmp_path / "missing")  # best effort: never raises
