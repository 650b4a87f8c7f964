"""``enhancerd init [DIR]``: a loadable, private starter config and its folders; never overwrites by accident."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from config import load_settings
from daemon.cli import main


def test_init_writes_a_loadable_config_and_its_folders(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    target = tmp_path / "site"
    assert main(["init", str(target)]) == 0
    config_file = target / "enhancerd.toml"
    settings = load_settings(config_file, environ={})
    assert settings.data_dir == target.resolve() / "var"
    for folder in settings.folders():
        assert folder.is_dir(), folder
    assert len(settings.api.token) >= 32
    assert stat.S_IMODE(config_file.stat().st_mode) == 0o600  # it holds the token
    assert not list(target.glob(".*.tmp"))
    assert f"wrote {config_file}" in capsys.readouterr().out


def test_init_refuses_to_overwrite_without_force(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config_file = tmp_path / "enhancerd.toml"
    config_file.write_text("# mine\n")
    assert main(["init", str(tmp_path)]) == 1
    assert config_file.read_text() == "# mine\n"
    assert "already exists" in capsys.readouterr().err
    assert main(["init", "--force", str(tmp_path)]) == 0
    assert "[[inbox]]" in config_file.read_text()


def test_each_init_generates_a_different_token(tmp_path: Path) -> None:
    assert main(["init", str(tmp_path / "a")]) == 0
    assert main(["init", str(tmp_path / "b")]) == 0
    tokens = {load_settings(tmp_path / n / "enhancerd.toml", environ={}).api.token for n in "ab"}
    assert len(tokens) == 2
