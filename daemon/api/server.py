"""Serve the WSGI app with waitress on a thread of the daemon, with a stop that really ends every thread.

waitress' ``serve()`` blocks until the process dies; the daemon needs an orderly stop instead: ``stop()`` closes the
listening socket and open connections from inside the server's own event loop (a thread-safe trigger), joins the
loop thread, then stops waitress' worker threads.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from waitress import wasyncore
from waitress.server import BaseWSGIServer, create_server
from waitress.task import ThreadedTaskDispatcher

from config import is_loopback

log = logging.getLogger(__name__)

DEFAULT_THREADS = 4
"""waitress worker threads. Requests are short and Python-bound, so they share one GIL: more threads only share it
more ways, stretching every request (bench/api.py on 2 cores, 50 clients, busy worker: p99 of /api/v1/images about
500 ms with 8 threads, about 110 ms with 4). Extra connections wait in waitress' queue instead."""

STOP_TIMEOUT_SECONDS = 10.0
"""How long ``stop()`` waits for the loop thread and for requests in flight."""


class ApiServer:
    """waitress in a thread: ``start()``, ``stop()``; ``port`` is the bound port (so port 0 works in tests)."""

    def __init__(
        self, app: Any, host: str, port: int, threads: int = DEFAULT_THREADS, *, token: str | None = None
    ) -> None:
        """``token``: the configured token, to double-check the config's rule that a host other machines can reach
        needs one; ``None`` takes it from an app built by :func:`daemon.api.app.create_app`."""
        if token is None:
            token = _configured_token(app)
        if token is not None and not token and not is_loopback(host):
            raise ValueError(f"refusing to serve the API on {host} without a token: set [api] token or use 127.0.0.1")
        self._app = app
        self._host = host
        self._requested_port = port
        self._threads = threads
        self._server: Any = None
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        """The port actually bound (differs from the configured one when that was 0)."""
        if self._server is None:
            return self._requested_port
        if isinstance(self._server, BaseWSGIServer):
            return int(self._server.effective_port)
        return int(self._server.effective_listen[0][1])

    @property
    def host(self) -> str:
        return self._host

    def start(self) -> None:
        """Bind now (so a busy port fails the caller, not a thread) and serve on a background thread."""
        if self._server is not None:
            raise RuntimeError("ApiServer already started")
        dispatcher = _JoinableDispatcher()
        dispatcher.set_thread_count(self._threads)
        try:
            self._server = create_server(
                self._app,
                host=self._host,
                port=self._requested_port,
                threads=self._threads,
                ident="enhancerd",
                _dispatcher=dispatcher,
            )
        except BaseException:
            dispatcher.shutdown()
            dispatcher.join(STOP_TIMEOUT_SECONDS)
            raise
        self._thread = threading.Thread(target=self._serve, name="api-server", daemon=False)
        self._thread.start()
        log.info("API listening on http://%s:%d", self._host, self.port)

    def _serve(self) -> None:
        try:
            self._server.run()
        except Exception:  # the loop must never die silently: the service's health check reads is_alive()
            log.exception("API server loop failed")

    def is_alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def stop(self) -> None:
        """Close the listening socket and connections, join the loop thread, stop the worker threads. Idempotent."""
        server, thread = self._server, self._thread
        if server is None or thread is None:
            return
        socket_map = server.map if not isinstance(server, BaseWSGIServer) else server._map
        trigger = _trigger_of(server)
        if trigger is not None and thread.is_alive():
            trigger.pull_trigger(lambda: wasyncore.close_all(socket_map))
        else:
            wasyncore.close_all(socket_map)
        thread.join(STOP_TIMEOUT_SECONDS)
        if thread.is_alive():
            log.warning("API server thread did not stop within %.0f s", STOP_TIMEOUT_SECONDS)
        server.task_dispatcher.shutdown(timeout=STOP_TIMEOUT_SECONDS)
        server.task_dispatcher.join(STOP_TIMEOUT_SECONDS)
        self._server = None
        self._thread = None
        log.info("API server stopped")


class _JoinableDispatcher(ThreadedTaskDispatcher):
    """waitress' dispatcher only counts its threads; this one keeps them, so ``stop()`` can join every one."""

    def __init__(self) -> None:
        super().__init__()
        self._handles: list[threading.Thread] = []

    def start_new_thread(self, target: Any, thread_no: int) -> None:
        thread = threading.Thread(target=target, name=f"api-worker-{thread_no}", args=(thread_no,), daemon=True)
        self._handles.append(thread)
        thread.start()

    def join(self, timeout: float) -> None:
        for thread in self._handles:
            thread.join(timeout)


def _configured_token(app: Any) -> str | None:
    state = getattr(app, "extensions", {}).get("enhancerd")
    context = getattr(state, "context", None)
    return context.settings.api.token if context is not None else None


def _trigger_of(server: Any) -> Any:
    """The trigger that wakes the event loop (a single server has one; a multi-socket server's members share one)."""
    if isinstance(server, BaseWSGIServer):
        return server.trigger
    for member in server.map.values():
        if isinstance(member, BaseWSGIServer):
            return member.trigger
    return None
