"""Ignore rules and the extension whitelist: which names in an inbox are never handed on."""

from __future__ import annotations

from pathlib import Path, PurePath

import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.atomicfile import temp_path
from daemon.watch.ignore import IgnoreRules
from daemon.watch.scan import iter_candidates

DEFAULT = IgnoreRules()

ACCEPTED = [
    "photo.jpg",
    "PHOTO.JPG",
    "photo.jpeg",
    "scan.png",
    "scan.tif",
    "scan.TIFF",
    "web.webp",
    "old.bmp",
    "album/2024/photo.jpg",
    "dir.jpg/photo.png",
    "my photo (1).jpg",
    "été/ÉCRAN.png",
    "a.b.c.jpg",
    "tmp/photo.jpg",  # a folder named tmp is not *.tmp
]

IGNORED = [
    (".hidden.jpg", ".hidden.jpg"),
    ("._photo.jpg", "._photo.jpg"),
    (".DS_Store", ".DS_Store"),
    ("Thumbs.db", "Thumbs.db"),
    ("thumbs.DB", "thumbs.DB"),
    ("desktop.ini", "desktop.ini"),
    ("Desktop.ini", "Desktop.ini"),
    ("@eaDir/photo.jpg", "@eaDir"),
    ("album/@eaDir/photo.jpg/SYNOFILE_THUMB_M.jpg", "@eaDir"),
    (".stfolder/photo.jpg", ".stfolder"),
    (".Trashes/501/photo.jpg", ".Trashes"),
    ("__MACOSX/album/._photo.jpg", "__MACOSX"),
    ("photo.jpg.part", "photo.jpg.part"),
    ("photo.tmp", "photo.tmp"),
    ("photo.JPG.TMP", "photo.JPG.TMP"),
    ("photo.jpg.crdownload", "photo.jpg.crdownload"),
    ("~$photo.jpg", "~$photo.jpg"),
    ("album/.git/objects/photo.jpg", ".git"),
    ("album/.sync/photo.jpg", ".sync"),
]

WRONG_EXTENSION = ["notes.txt", "movie.mov", "photo.gif", "raw.cr2", "jpg", "photo.", "archive.jpg.zip"]


@pytest.mark.parametrize("relative", ACCEPTED)
def test_candidate_photos_are_accepted(relative: str) -> None:
    assert DEFAULT.reason(PurePath(relative)) is None
    assert DEFAULT.accepts(PurePath(relative))


@pytest.mark.parametrize(("relative", "component"), IGNORED)
def test_builtin_ignores_apply_to_every_component(relative: str, component: str) -> None:
    reason = DEFAULT.reason(PurePath(relative))
    assert reason is not None
    assert component in reason
    assert not DEFAULT.accepts(PurePath(relative))


def test_temporary_files_of_atomic_writes_are_ignored(tmp_path: Path) -> None:
    """An output folder inside an inbox must not feed half-written outputs back in (see ``core.atomicfile``)."""
    temporary = temp_path(tmp_path / "album" / "photo.jpg")
    relative = PurePath("album", temporary.name)
    assert DEFAULT.reason(relative) is not None
    assert not DEFAULT.accepts(relative)


@pytest.mark.parametrize("relative", WRONG_EXTENSION)
def test_extension_whitelist(relative: str) -> None:
    assert DEFAULT.ignore_reason(PurePath(relative)) is None  # not ignored by name...
    reason = DEFAULT.reason(PurePath(relative))
    assert reason is not None and "extension" in reason  # ...but not a whitelisted extension


@pytest.mark.parametrize(
    ("extra", "relative", "accepted"),
    [
        (("*_thumb.*",), "a_thumb.jpg", False),
        (("*_thumb.*",), "album/b_THUMB.png", False),
        (("*_thumb.*",), "thumbnail.jpg", True),
        (("raw",), "raw/x.jpg", False),
        (("raw",), "a/raw/x.jpg", False),
        (("raw",), "rawhide/x.jpg", True),
        (("drafts/old",), "drafts/old/x.jpg", False),
        (("drafts/old",), "drafts/new/x.jpg", True),
        (("drafts/old",), "x/drafts/old/y.jpg", True),  # a pattern with "/" is anchored at the inbox root
        (("*/cache",), "a/cache/x.jpg", False),
        (("IMG_0001.jpg",), "img_0001.JPG", False),
    ],
)
def test_extra_patterns(extra: tuple[str, ...], relative: str, accepted: bool) -> None:
    rules = IgnoreRules(extra=extra)
    assert rules.accepts(PurePath(relative)) is accepted


@pytest.mark.parametrize(
    ("extensions", "relative", "accepted"),
    [
        (frozenset({".JPG", "png"}), "a.jpg", True),
        (frozenset({".JPG", "png"}), "a.PNG", True),
        (frozenset({".JPG", "png"}), "a.jpeg", False),
        (frozenset({"heic"}), "a.HEIC", True),
        (frozenset({"heic"}), "a.jpg", False),
    ],
)
def test_configurable_extensions(extensions: frozenset[str], relative: str, accepted: bool) -> None:
    rules = IgnoreRules(extensions=extensions)
    assert rules.accepts(PurePath(relative)) is accepted


@pytest.mark.parametrize("relative", ["", "/abs/x.jpg", "../x.jpg"])
def test_paths_outside_the_root_are_refused(relative: str) -> None:
    assert DEFAULT.reason(PurePath(relative)) is not None


@pytest.mark.parametrize(
    ("extra", "extensions"), [(("",), frozenset({"jpg"})), (("/",), frozenset({"jpg"})), ((), {""})]
)
def test_invalid_rules_are_refused(extra: tuple[str, ...], extensions: frozenset[str]) -> None:
    with pytest.raises(ValueError):
        IgnoreRules(extra=extra, extensions=frozenset(extensions))


_name = st.text(alphabet=st.sampled_from("abcXYZ019 _-."), min_size=1, max_size=12).filter(
    lambda s: s not in {".", ".."}
)


@given(st.lists(_name, min_size=1, max_size=4), st.integers(min_value=0, max_value=3))
def test_any_dot_component_hides_the_file(parts: list[str], index: int) -> None:
    index = min(index, len(parts) - 1)
    parts[index] = "." + parts[index]
    assert not DEFAULT.accepts(PurePath(*parts))


def test_scan_prunes_ignored_folders_and_applies_rules(tmp_path: Path) -> None:
    files = [
        "a.jpg",
        "sub/deeper/b.PNG",
        "@eaDir/c.jpg",
        "sub/.hidden/d.jpg",
        "sub/e.jpg.part",
        "sub/notes.txt",
        "__MACOSX/f.jpg",
        "raw/g.jpg",
    ]
    for name in files:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"x")
    rules = IgnoreRules(extra=("raw",))
    found = sorted(p.relative_to(tmp_path).as_posix() for p in iter_candidates(tmp_path, rules))
    assert found == ["a.jpg", "sub/deeper/b.PNG"]
    found_sub = [p.relative_to(tmp_path).as_posix() for p in iter_candidates(tmp_path, rules, start=tmp_path / "sub")]
    assert found_sub == ["sub/deeper/b.PNG"]
    assert list(iter_candidates(tmp_path, rules, start=tmp_path / "@eaDir")) == []


def test_scan_reports_unlistable_folders(tmp_path: Path) -> None:
    errors: list[OSError] = []
    assert list(iter_candidates(tmp_path / "missing", DEFAULT, on_error=errors.append)) == []
    assert len(errors) == 1
