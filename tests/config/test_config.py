"""Configuration: defaults, TOML, environment and command-line overrides, validation messages, path resolution."""

from __future__ import annotations

import dataclasses
import textwrap
from pathlib import Path

import pytest

from config import (
    ConfigError,
    Device,
    OriginalsPolicy,
    OutputFormat,
    RetentionPolicy,
    Settings,
    ensure_folders,
    is_loopback,
    load_settings,
    starter_text,
)
from config import defaults as d

CONTRACT_EXAMPLE = """
data_dir = "var"
[[inbox]]
path = "var/inbox"
output = "var/outbox"
originals = "archive"
archive = "var/archive"
[api]
host = "127.0.0.1"
port = 8750
token = "change-me"
"""


def write(folder: Path, text: str, name: str = "enhancerd.toml") -> Path:
    path = folder / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def problems(excinfo: pytest.ExceptionInfo[ConfigError]) -> str:
    return "\n".join(excinfo.value.problems)


# --- defaults -----------------------------------------------------------------------------------------------------


def test_embedded_default_puts_everything_under_var(tmp_path: Path) -> None:
    settings = load_settings(environ={}, cwd=tmp_path)
    var = tmp_path.resolve() / "var"
    assert settings.data_dir == var
    assert settings.database_url == f"sqlite:///{var / 'enhancerd.db'}"
    [inbox] = settings.inboxes
    assert (inbox.path, inbox.output, inbox.archive, inbox.failed) == (
        var / "inbox",
        var / "outbox",
        var / "archive",
        var / "failed",
    )
    assert (inbox.name, inbox.originals, inbox.profile) == ("inbox", OriginalsPolicy.ARCHIVE, "default")
    assert (settings.api.host, settings.api.port, settings.api.token) == ("127.0.0.1", 8750, "")
    assert settings.worker.batch_size == d.WORKER_BATCH_SIZE
    assert settings.retention.schedule == "0 3 * * *"
    assert inbox.retention == RetentionPolicy(None, None, None, None)
    assert settings.profile("default").strength == 1.0
    assert settings.config_file is None and settings.warnings == ()


def test_settings_are_frozen_and_hide_the_token(tmp_path: Path) -> None:
    settings = load_settings(environ={"ENHANCERD_API_TOKEN": "s3cret"}, cwd=tmp_path)
    with pytest.raises(dataclasses.FrozenInstanceError):
        settings.api.port = 1  # type: ignore[misc]
    assert settings.api.token == "s3cret"
    assert "s3cret" not in repr(settings)


def test_starter_template_matches_the_defaults(tmp_path: Path) -> None:
    """The commented template and the embedded default describe the same daemon (apart from the token)."""
    from_template = load_settings(write(tmp_path, starter_text(token="t")), environ={})
    embedded = load_settings(environ={}, cwd=tmp_path)
    assert from_template.api.token == "t"
    assert dataclasses.replace(from_template, config_file=None, api=embedded.api) == embedded


# --- TOML ---------------------------------------------------------------------------------------------------------


def test_contract_example_loads_with_paths_relative_to_the_file(tmp_path: Path, monkeypatch) -> None:
    folder = tmp_path / "etc"
    folder.mkdir()
    monkeypatch.chdir(tmp_path)  # the current directory must not matter
    settings = load_settings(write(folder, CONTRACT_EXAMPLE), environ={})
    assert settings.data_dir == folder.resolve() / "var"
    assert settings.inboxes[0].output == folder.resolve() / "var" / "outbox"
    assert settings.api.token == "change-me"
    assert settings.config_file == folder.resolve() / "enhancerd.toml"


def test_several_inboxes_with_their_own_settings(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        [[inbox]]
        path = "in/a"
        output = "out/a"
        originals = "keep"
        polling = true
        settle_seconds = 9
        extensions = [".JPG", "png"]
        ignore = ["*.xmp"]
        profile = "gentle"
        output_format = "webp"
        [inbox.retention]
        outputs_days = 3
        [[inbox]]
        name = "scans"
        path = "/srv/scans"
        output = "/srv/enhanced"
        failed = "/srv/failed"
        [profiles.gentle]
        strength = 0.4
        [retention]
        failed_days = 14
        """,
    )
    a, scans = load_settings(path, environ={}).inboxes
    assert (a.name, a.originals, a.polling, a.settle_seconds) == ("a", OriginalsPolicy.KEEP, True, 9.0)
    assert (a.extensions, a.ignore, a.output_format) == (("jpg", "png"), ("*.xmp",), OutputFormat.WEBP)
    assert a.retention == RetentionPolicy(outputs_days=3.0, originals_days=None, failed_days=14.0, max_disk_gb=None)
    assert (scans.name, scans.path, scans.failed) == ("scans", Path("/srv/scans"), Path("/srv/failed"))
    assert scans.settle_seconds == d.WATCHER_SETTLE_SECONDS
    assert scans.retention.failed_days == 14.0


def test_forever_keeps_files_in_one_inbox_despite_the_default(tmp_path: Path) -> None:
    path = write(tmp_path, '[retention]\noutputs_days = 30\n[[inbox]]\n[inbox.retention]\noutputs_days = "forever"\n')
    assert load_settings(path, environ={}).inboxes[0].retention.outputs_days is None


def test_broken_toml_names_the_file_and_line(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"enhancerd.toml.*line 2"):
        load_settings(write(tmp_path, "[api]\nport = = 1\n"), environ={})
    with pytest.raises(ConfigError, match="not found"):
        load_settings(tmp_path / "missing.toml", environ={})


# --- overrides ----------------------------------------------------------------------------------------------------


def test_environment_overrides_with_text_parsing(tmp_path: Path) -> None:
    path = write(tmp_path, CONTRACT_EXAMPLE)
    environ = {
        "ENHANCERD_API_TOKEN": "from-env",
        "ENHANCERD_API_PORT": "9001",
        "ENHANCERD_DATA_DIR": "/srv/enhancerd",
        "ENHANCERD_WORKER_DEVICE": "CPU",
        "ENHANCERD_INBOX_0_POLLING": "yes",
        "ENHANCERD_INBOX_0_EXTENSIONS": "jpg, png",
        "ENHANCERD_INBOX_0_RETENTION_OUTPUTS_DAYS": "7",
        "ENHANCERD_PROFILES_DEFAULT_STRENGTH": "0.25",
        "ENHANCERD_RETENTION_MAX_DISK_GB": "forever",
        "ENHANCERD_TEST_PG_URL": "postgresql://elsewhere",  # another tool's variable: ignored with a warning
        "UNRELATED": "1",
    }
    settings = load_settings(path, environ=environ)
    assert (settings.api.token, settings.api.port) == ("from-env", 9001)
    assert settings.data_dir == Path("/srv/enhancerd")
    assert settings.worker.device is Device.CPU
    inbox = settings.inboxes[0]
    assert (inbox.polling, inbox.extensions, inbox.retention.outputs_days) == (True, ("jpg", "png"), 7.0)
    assert settings.profile("default").strength == 0.25
    assert settings.retention.max_disk_gb is None
    assert settings.warnings == ("environment variable ENHANCERD_TEST_PG_URL matches no configuration key; ignored",)


def test_command_line_overrides_win_over_the_environment(tmp_path: Path) -> None:
    settings = load_settings(
        write(tmp_path, CONTRACT_EXAMPLE),
        environ={"ENHANCERD_API_PORT": "9001"},
        overrides={
            "api.port": "9002",
            "worker.batch_size": 3,
            "inbox.0.originals": "delete",
            "profiles.fast.strength": 0.5,
        },
    )
    assert (settings.api.port, settings.worker.batch_size) == (9002, 3)
    assert settings.inboxes[0].originals is OriginalsPolicy.DELETE
    assert settings.profile("fast").strength == 0.5


def test_overrides_of_a_missing_inbox_or_unknown_key_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as excinfo:
        load_settings(
            environ={"ENHANCERD_INBOX_1_PATH": "/x"},
            overrides={"worker.batch": 1, "nonsense": 1},
            cwd=tmp_path,
        )
    text = problems(excinfo)
    assert "ENHANCERD_INBOX_1_PATH: there is no inbox 1" in text
    assert "override worker.batch: unknown key 'batch' (did you mean 'batch_size'?)" in text
    assert "override nonsense: unknown key 'nonsense'" in text


# --- validation ---------------------------------------------------------------------------------------------------


def test_unknown_keys_name_themselves_with_a_suggestion(tmp_path: Path) -> None:
    path = write(tmp_path, 'data_dri = "x"\n[api]\nprot = 1\n[[inbox]]\nouptut = "o"\n[wrker]\n')
    with pytest.raises(ConfigError) as excinfo:
        load_settings(path, environ={})
    text = problems(excinfo)
    assert "unknown top-level key 'data_dri' (did you mean 'data_dir'?)" in text
    assert "[api]: unknown key 'prot' (did you mean 'port'?)" in text
    assert "[[inbox]] 0: unknown key 'ouptut' (did you mean 'output'?)" in text
    assert "unknown top-level key 'wrker' (did you mean 'worker'?)" in text


def test_wrong_types_are_reported_all_at_once(tmp_path: Path) -> None:
    path = write(tmp_path, '[api]\nport = "8750"\n[worker]\nbatch_size = 2.5\ndevice = "tpu"\n[[inbox]]\npolling = 1\n')
    with pytest.raises(ConfigError) as excinfo:
        load_settings(path, environ={"ENHANCERD_WORKER_TILE": "big"})
    text = problems(excinfo)
    assert "[api] port: expected an integer, got '8750' (str)" in text
    assert "[worker] batch_size: expected an integer, got 2.5 (float)" in text
    assert "[worker] device: expected one of auto | cpu | cuda | mps, got 'tpu' (str)" in text
    assert "polling: expected true or false, got 1 (int)" in text
    assert "ENHANCERD_WORKER_TILE: expected an integer, got 'big'" in text
    assert len(excinfo.value.problems) == 5


@pytest.mark.parametrize(
    ("inbox", "message"),
    [
        ('path = "in"\noutput = "in/out"', "output"),
        ('path = "in"\noriginals = "archive"\narchive = "in/archive"', "archive"),
        ('path = "in"\nfailed = "in/.failed"', "failed"),
        ('path = "var"', "data_dir"),
        ('path = "out/in"\noutput = "out"', "is inside inbox 'in' output"),
    ],
)
def test_folders_written_by_the_daemon_may_not_be_inside_an_inbox(tmp_path: Path, inbox: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_settings(write(tmp_path, f"[[inbox]]\n{inbox}\n"), environ={})


def test_archive_inside_the_inbox_is_fine_when_nothing_is_archived(tmp_path: Path) -> None:
    path = write(tmp_path, '[[inbox]]\npath = "in"\noriginals = "keep"\narchive = "in/archive"\nfailed = "f"\n')
    assert load_settings(path, environ={}).inboxes[0].originals is OriginalsPolicy.KEEP


def test_nested_or_same_named_inboxes_are_refused(tmp_path: Path) -> None:
    nested = '[[inbox]]\npath = "in"\noutput = "o1"\n[[inbox]]\npath = "in/sub"\noutput = "o2"\nname = "sub"\n'
    with pytest.raises(ConfigError, match=r"inbox 'sub' .* is inside inbox 'in'"):
        load_settings(write(tmp_path, nested), environ={})
    twins = '[[inbox]]\npath = "a/photos"\n[[inbox]]\npath = "b/photos"\n'
    with pytest.raises(ConfigError, match="two inboxes are named 'photos'"):
        load_settings(write(tmp_path, twins), environ={})


def test_missing_inbox_is_created_unless_create_is_false(tmp_path: Path) -> None:
    settings = load_settings(write(tmp_path, '[[inbox]]\npath = "new/inbox"\n'), environ={})
    created = ensure_folders(settings)
    assert settings.inboxes[0].path in created and settings.inboxes[0].path.is_dir()
    assert ensure_folders(settings) == []
    refused = '[[inbox]]\npath = "/mnt/not-mounted/photos"\ncreate = false\n'
    with pytest.raises(ConfigError, match=r"does not exist \(create = false"):
        load_settings(write(tmp_path, refused), environ={})


def test_unknown_profile_is_refused_with_a_suggestion(tmp_path: Path) -> None:
    path = write(tmp_path, '[[inbox]]\nprofile = "gentl"\n[profiles.gentle]\nstrength = 0.5\n')
    with pytest.raises(ConfigError, match="unknown profile 'gentl' \\(did you mean 'gentle'\\?\\)"):
        load_settings(path, environ={})


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        ("[api]\nport = 70000", "port must be 0-65535"),
        ("[worker]\nbatch_size = 0", "batch_size must be at least 1"),
        ("[worker]\nnice = 20", "nice must be 0-19"),
        ("[worker]\ntile = 8", r"tile must be 0 \(auto: chosen per device\) or at least 16"),
        ("[worker]\ntile = -1", "tile must be 0"),
        ("[worker]\nensemble = 3", "ensemble must be one of 1, 2, 4, 8, got 3"),
        ("[worker]\nbackoff_base_seconds = 10\nbackoff_max_seconds = 5", "backoff_max_seconds"),
        ("[profiles.default]\nstrength = 1.5", "strength must be between 0 and 1"),
        ("[profiles.default]\nensemble = 3", r"ensemble must be 0 \(the worker's\) or one of 1, 2, 4, 8, got 3"),
        ('[retention]\nschedule = "nightly"', "5-field cron"),
        ("[retention]\noutputs_days = -1", "must not be negative"),
        ('[logging]\nlevel = "LOUD"', "level must be one of"),
    ],
)
def test_ranges_are_checked(tmp_path: Path, toml: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_settings(write(tmp_path, toml), environ={})


def test_non_loopback_api_needs_a_token(tmp_path: Path) -> None:
    exposed = write(tmp_path, '[api]\nhost = "0.0.0.0"\n')
    with pytest.raises(ConfigError, match="no token is set"):
        load_settings(exposed, environ={})
    assert load_settings(exposed, environ={"ENHANCERD_API_TOKEN": "x"}).api.host == "0.0.0.0"
    (tmp_path / "token").write_text("from-file\n")
    with_file = write(tmp_path, '[api]\nhost = "::"\ntoken_file = "token"\n', name="b.toml")
    assert load_settings(with_file, environ={}).api.token == "from-file"
    missing = write(tmp_path, '[api]\ntoken_file = "nope"\n', name="c.toml")
    with pytest.raises(ConfigError, match="cannot read"):
        load_settings(missing, environ={})


@pytest.mark.parametrize(
    ("host", "loopback"),
    [("127.0.0.1", True), ("127.8.0.1", True), ("::1", True), ("localhost", True), ("0.0.0.0", False), ("::", False)],
)
def test_is_loopback(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


def test_folders_lists_what_the_daemon_needs(tmp_path: Path) -> None:
    settings: Settings = load_settings(environ={}, cwd=tmp_path)
    names = [path.name for path in settings.folders()]
    assert names == ["var", "trash", "work", "inbox", "outbox", "failed", "archive"]


def test_the_worker_may_run_on_apple_gpus_like_enhance(tmp_path: Path) -> None:
    settings = load_settings(write(tmp_path, '[worker]\ndevice = "mps"\n'), environ={})
    assert settings.worker.device is Device.MPS and settings.worker.device.value == "mps"
