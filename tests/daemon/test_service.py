"""``enhancerd run``: configuration errors, log formats, signals, and the Service in-process (threads joined).

The subprocess test with a crash and a burst of files is in ``test_service_e2e.py``.
"""

from __future__ import annotations

import gc
import io
import json
import logging
import os
import signal
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image as PILImage

import storage
from config import LogFormat, LoggingSettings, load_settings
from daemon.cli import main
from daemon.commands.run import parse_overrides
from daemon.logging_setup import JsonFormatter, configure_logging
from daemon.signals import StopSignals


@pytest.fixture
def restore_logging() -> Iterator[None]:
    """``enhancerd run`` replaces the root logger's handlers; put pytest's back afterwards."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for handler in list(root.handlers):
        root.removeHandler(handler)
    for handler in handlers:
        root.addHandler(handler)
    root.setLevel(level)


def run_cli(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, list[str]]:
    code = main(argv)
    lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith("enhancerd run:")]
    return code, lines


# --- configuration errors: exit 2, one clear line each ----------------------------------------------------------------


def test_a_missing_config_file_is_one_line_and_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, lines = run_cli(["run", "--config", str(tmp_path / "nope.toml")], capsys)
    assert code == 2
    assert lines == [f"enhancerd run: config: config file not found: {tmp_path / 'nope.toml'}"]


def test_every_config_problem_gets_its_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "enhancerd.toml"
    config.write_text('[api]\nprot = 8750\n[worker]\nbatch_size = "eight"\n')
    code, lines = run_cli(["run", "--config", str(config)], capsys)
    assert code == 2 and len(lines) == 2
    assert "unknown key 'prot'" in lines[0] and "did you mean 'port'" in lines[0]
    assert "batch_size" in lines[1]


def test_an_output_inside_the_inbox_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "enhancerd.toml"
    config.write_text('[[inbox]]\npath = "in"\noutput = "in/out"\n')
    code, lines = run_cli(["run", "--config", str(config)], capsys)
    assert code == 2 and len(lines) == 1 and "inside" in lines[0]


def test_set_overrides_are_checked(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "enhancerd.toml"
    config.write_text("")
    code, lines = run_cli(["run", "--config", str(config), "--set", "api.port"], capsys)
    assert code == 2 and lines == ["enhancerd run: config: --set 'api.port': expected KEY=VALUE, e.g. api.port=9000"]
    code, lines = run_cli(["run", "--config", str(config), "--set", "worker.batchsize=4"], capsys)
    assert code == 2 and "unknown key 'batchsize'" in lines[0]
    code, lines = run_cli(["run", "--config", str(config), "--set", "api.port=eighty"], capsys)
    assert code == 2 and "expected an integer" in lines[0]
    assert parse_overrides(["a.b=c=d", "x.y="]) == ({"a.b": "c=d", "x.y": ""}, [])


def test_an_unloadable_model_stops_the_start_with_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], restore_logging: None
) -> None:
    config = tmp_path / "enhancerd.toml"
    config.write_text('[worker]\nmodel = "missing.safetensors"\n[api]\nport = 0\n')
    code, lines = run_cli(["run", "--config", str(config)], capsys)
    assert code == 2 and len(lines) == 1 and "missing.safetensors" in lines[0] and "no such model file" in lines[0]


# --- logging and signals ----------------------------------------------------------------------------------------------


def test_json_log_lines_carry_extras_and_exceptions() -> None:
    try:
        raise ValueError("boom")
    except ValueError:
        info = sys.exc_info()
    record = logging.getLogger("x").makeRecord(
        "x", logging.ERROR, __file__, 1, "image %d failed", (7,), info, extra={"image_id": 7}
    )
    entry = json.loads(JsonFormatter().format(record))
    assert entry["message"] == "image 7 failed" and entry["level"] == "ERROR" and entry["image_id"] == 7
    assert "ValueError: boom" in entry["exception"] and entry["time"].endswith("+00:00")


def test_configure_logging_text_and_json(restore_logging: None) -> None:
    stream = io.StringIO()
    configure_logging(LoggingSettings(level="WARNING", format=LogFormat.JSON), stream=stream)
    logging.getLogger("enhancerd.test").info("hidden")
    logging.getLogger("enhancerd.test").warning("shown %s", "here")
    (line,) = stream.getvalue().splitlines()
    assert json.loads(line)["message"] == "shown here"
    stream = io.StringIO()
    configure_logging(LoggingSettings(level="INFO", format=LogFormat.TEXT), stream=stream)
    logging.getLogger("enhancerd.test").info("plain")
    assert stream.getvalue().rstrip().endswith("INFO enhancerd.test [MainThread]: plain")


def test_a_signal_only_sets_the_event_and_handlers_are_restored() -> None:
    before = signal.getsignal(signal.SIGTERM)
    stop = threading.Event()
    with StopSignals(stop) as signals:
        os.kill(os.getpid(), signal.SIGTERM)
        deadline = time.monotonic() + 5
        while not stop.is_set() and time.monotonic() < deadline:
            time.sleep(0.01)
        assert stop.is_set() and signals.received == signal.SIGTERM
    assert signal.getsignal(signal.SIGTERM) is before


# --- the Service in-process -------------------------------------------------------------------------------------------


class RecordingNotifier:
    """A SystemdNotifier stand-in that keeps what would have been sent."""

    def __init__(self, watchdog_seconds: float | None = None) -> None:
        self.watchdog_seconds = watchdog_seconds
        self.sent: list[str] = []
        self._lock = threading.Lock()

    def _add(self, item: str) -> bool:
        with self._lock:
            self.sent.append(item)
        return True

    def ready(self, status: str | None = None) -> bool:
        return self._add("READY=1")

    def status(self, text: str) -> bool:
        return self._add(f"STATUS={text}")

    def watchdog(self) -> bool:
        return self._add("WATCHDOG=1")

    def has_sent(self, item: str) -> bool:
        with self._lock:
            return item in self.sent

    def stopping(self, status: str | None = None) -> bool:
        return self._add("STOPPING=1")


def wait_for(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.mark.slow
def test_service_runs_notifies_and_joins_every_thread(tmp_path: Path) -> None:
    from daemon.service import Service

    overrides = {"api.port": 0, "worker.device": "cpu", "inbox.0.settle_seconds": 0.2, "watcher.rescan_seconds": 1.0}
    settings = load_settings(None, cwd=tmp_path, environ={}, overrides=overrides)
    notifier = RecordingNotifier(watchdog_seconds=0.2)
    service = Service(settings, notifier=notifier, finish_timeout=10)  # type: ignore[arg-type]
    service.start()
    try:
        assert notifier.sent == ["READY=1"]
        assert gc.get_freeze_count() > 0, "the start-up heap is frozen before serving"
        pixels = np.random.default_rng(1).integers(0, 256, (40, 56, 3), dtype=np.uint8)
        PILImage.fromarray(pixels).save(settings.inboxes[0].path / "photo.png")

        def done() -> bool:
            with service.sessions() as session:
                return storage.count_by_state(session)[storage.ImageState.DONE] == 1

        wait_for(done, 60, "the photo to be enhanced")
        assert (settings.inboxes[0].output / "photo.png").exists()
        # the original moves after the commit that marks it done (Originals.settle finishes it after a crash)
        archived = settings.inboxes[0].archive / "photo.png"
        wait_for(archived.exists, 10, "the original to be archived")
        assert service.api is not None
        with urllib.request.urlopen(f"http://127.0.0.1:{service.api.port}/api/v1/status", timeout=5) as reply:
            status = json.load(reply)
        assert status["worker"]["done"] == 1 and status["device"] == "cpu"
        assert status["model_version"].startswith("enhancerd-restorer@")
        assert status["watchers"][settings.inboxes[0].name]["alive"] is True

        def stop_after_a_watchdog_ping() -> None:
            # not a fixed delay: on a loaded machine the first ping can take longer than a few watchdog periods
            deadline = time.monotonic() + 30
            while not notifier.has_sent("WATCHDOG=1") and time.monotonic() < deadline:
                time.sleep(0.02)
            service.request_stop()

        stopper = threading.Thread(target=stop_after_a_watchdog_ping)
        stopper.start()
        try:
            assert service.run_until_stopped() == 0
        finally:
            stopper.join()
    finally:
        service.stop()
    assert notifier.sent[-1] == "STOPPING=1" and "WATCHDOG=1" in notifier.sent
    assert service.status()["daemon"] == "stopped"
    assert gc.get_freeze_count() == 0, "a stopped service gives its frozen objects back"


def test_a_second_signal_forces_the_exit() -> None:
    import subprocess

    script = (
        "import os, signal, threading, time\n"
        "from daemon.signals import StopSignals\n"
        "stop = threading.Event()\n"
        "with StopSignals(stop):\n"
        "    os.kill(os.getpid(), signal.SIGTERM)\n"
        "    while not stop.is_set():\n"
        "        time.sleep(0.01)\n"
        "    os.kill(os.getpid(), signal.SIGINT)\n"
        "    time.sleep(10)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, timeout=60, cwd=Path(__file__).parents[2]
    )
    assert done.returncode == 1
    assert b"second SIGINT while stopping; exiting now" in done.stderr
