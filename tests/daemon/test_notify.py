"""sd_notify against a fake NOTIFY_SOCKET."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

from daemon.notify import SystemdNotifier


@pytest.fixture
def fake_systemd(tmp_path: Path):
    path = tmp_path / "notify.sock"
    server = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    server.bind(str(path))
    server.settimeout(2.0)
    yield path, server
    server.close()


def test_messages_reach_the_socket(fake_systemd) -> None:
    path, server = fake_systemd
    notifier = SystemdNotifier({"NOTIFY_SOCKET": str(path)})
    assert notifier.enabled
    assert notifier.ready("model loaded")
    assert server.recv(4096) == b"READY=1\nSTATUS=model loaded"
    assert notifier.status("queue 3")
    assert server.recv(4096) == b"STATUS=queue 3"
    assert notifier.watchdog()
    assert server.recv(4096) == b"WATCHDOG=1"
    assert notifier.stopping()
    assert server.recv(4096) == b"STOPPING=1"


def test_abstract_socket_address() -> None:
    name = f"enhancerd-test-{os.getpid()}"
    server = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    server.bind("\0" + name)
    server.settimeout(2.0)
    try:
        assert SystemdNotifier({"NOTIFY_SOCKET": "@" + name}).ready()
        assert server.recv(4096) == b"READY=1"
    finally:
        server.close()


def test_without_systemd_every_call_is_a_quiet_no_op(tmp_path: Path) -> None:
    assert not SystemdNotifier({}).enabled
    assert not SystemdNotifier({}).ready()
    # A socket that has gone away is reported as False, never raised.
    assert not SystemdNotifier({"NOTIFY_SOCKET": str(tmp_path / "gone.sock")}).status("x")


def test_watchdog_interval_only_for_this_process() -> None:
    mine = SystemdNotifier({"NOTIFY_SOCKET": "/x", "WATCHDOG_USEC": "30000000", "WATCHDOG_PID": str(os.getpid())})
    assert mine.watchdog_seconds == 30.0
    other = SystemdNotifier({"NOTIFY_SOCKET": "/x", "WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "1"})
    assert other.watchdog_seconds is None
