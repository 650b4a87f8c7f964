"""ApiServer: waitress on a thread, a real HTTP round trip on port 0, and a stop that joins every thread."""

from __future__ import annotations

import http.client
import json
import socket
import threading
import urllib.request

import pytest

from daemon.api.server import ApiServer


def _api_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith(("api-server", "api-worker"))]


def test_serves_real_http_on_a_free_port_and_stops(app, auth) -> None:
    server = ApiServer(app, "127.0.0.1", 0, threads=2)
    server.start()
    try:
        assert server.port != 0 and server.is_alive()
        with urllib.request.urlopen(f"http://127.0.0.1:{server.port}/api/v1/health", timeout=5) as response:
            assert response.status == 200 and json.load(response)["status"] == "ok"
        request = urllib.request.Request(f"http://127.0.0.1:{server.port}/api/v1/status", headers=auth)
        with urllib.request.urlopen(request, timeout=5) as response:
            assert json.load(response)["queue"]["counts"]["queued"] == 0
        # a client that keeps its connection open must not keep the server alive
        idle = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
        idle.request("GET", "/api/v1/health")
        assert idle.getresponse().read()
    finally:
        server.stop()
    assert not server.is_alive()
    assert _api_threads() == []
    with pytest.raises(OSError), socket.create_connection(("127.0.0.1", server.port), timeout=1):
        pass
    idle.close()
    server.stop()  # idempotent


def test_refuses_a_public_address_without_a_token(app) -> None:
    with pytest.raises(ValueError, match="without a token"):
        ApiServer(app, "0.0.0.0", 0, token="")
    ApiServer(app, "0.0.0.0", 0, token="secret")  # fine with one (not started)
    ApiServer(app, "127.0.0.1", 0, token="")  # loopback may run open


@pytest.mark.parametrize("settings_overrides", [{"api.token": ""}])
def test_the_token_check_reads_an_apps_own_settings(app) -> None:
    with pytest.raises(ValueError, match="without a token"):
        ApiServer(app, "192.0.2.10", 0)
    ApiServer(app, "::1", 0)


def test_a_busy_port_fails_start_and_leaves_no_thread(app) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        server = ApiServer(app, "127.0.0.1", taken.getsockname()[1])
        with pytest.raises(OSError):
            server.start()
    assert _api_threads() == []
    server.stop()


def test_stop_waits_for_requests_in_flight(make_context, auth) -> None:
    from daemon.api.app import create_app

    entered, release = threading.Event(), threading.Event()

    def slow_status() -> dict:
        entered.set()
        release.wait(5)
        return {}

    server = ApiServer(create_app(make_context(status=slow_status)), "127.0.0.1", 0, threads=2)
    server.start()
    result: dict[str, int] = {}

    def call() -> None:
        request = urllib.request.Request(f"http://127.0.0.1:{server.port}/api/v1/status", headers=auth)
        with urllib.request.urlopen(request, timeout=10) as response:
            result["status"] = response.status

    client = threading.Thread(target=call)
    client.start()
    try:
        assert entered.wait(5)
        release.set()
        client.join(10)
    finally:
        server.stop()
    assert result == {"status": 200}
    assert _api_threads() == []
