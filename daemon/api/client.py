"""A small HTTP client for the CLI helpers (``enhancerd status``, ``reprocess``, ``retention``): standard library
only (urllib), bearer token, problem+json errors turned into one readable line."""

from __future__ import annotations

import argparse
import json
import os
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any

DEFAULT_TIMEOUT_SECONDS = 30.0
TOKEN_VARIABLE = "ENHANCERD_API_TOKEN"


class ApiClientError(Exception):
    """A request failed; ``str()`` is the one line to show, ``status`` the HTTP status (``None``: no answer)."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


def add_connection_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("connection (default: the [api] section of the config)")
    group.add_argument("--config", metavar="FILE", help="daemon config to read [api] host, port and token from")
    group.add_argument("--url", help="API base URL, e.g. http://127.0.0.1:8750 (overrides the config)")
    group.add_argument("--token", help=f"bearer token (default: ${TOKEN_VARIABLE}, then the config's)")
    group.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT_SECONDS, help="seconds per request")
    parser.add_argument("--json", action="store_true", help="print the API's JSON answer")


@dataclass(frozen=True)
class ApiClient:
    base_url: str
    token: str = ""
    timeout: float = DEFAULT_TIMEOUT_SECONDS

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> ApiClient:
        """URL and token from ``--url``/``--token``, the environment, or the config's ``[api]`` section."""
        token = args.token or os.environ.get(TOKEN_VARIABLE, "")
        url = args.url
        if url is None or (not token and args.config):
            from config import ConfigError, load_settings

            try:
                settings = load_settings(args.config)
            except ConfigError as exc:
                raise ApiClientError(str(exc).replace("\n", " ")) from None
            token = token or settings.api.token
            if url is None:
                url = f"http://{_connect_host(settings.api.host)}:{settings.api.port}"
        return cls(url.rstrip("/"), token, args.timeout)

    def request(self, method: str, path: str, body: Any = None) -> Any:
        """The decoded JSON answer; :class:`ApiClientError` with the server's ``detail`` otherwise."""
        data = json.dumps(body).encode() if body is not None else None
        headers = {"Accept": "application/json"}
        if data is not None:
            headers["Content-Type"] = "application/json"
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        request = urllib.request.Request(self.base_url + path, data=data, headers=headers, method=method)
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                return json.loads(response.read() or b"null")
        except urllib.error.HTTPError as exc:
            raise ApiClientError(f"{exc.code} {_detail(exc)}", exc.code) from None
        except urllib.error.URLError as exc:
            raise ApiClientError(f"cannot reach {self.base_url} ({exc.reason}); is the daemon running?") from None
        except (TimeoutError, OSError) as exc:
            raise ApiClientError(f"no answer from {self.base_url} ({exc})") from None
        except ValueError:
            raise ApiClientError(f"{self.base_url}{path} did not answer JSON") from None


def _connect_host(host: str) -> str:
    """Where a local client reaches a server listening on ``host`` (a wildcard address means this machine)."""
    if host in ("0.0.0.0", ""):
        return "127.0.0.1"
    if host == "::":
        return "[::1]"
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


def _detail(error: urllib.error.HTTPError) -> str:
    try:
        body = json.loads(error.read() or b"{}")
        return str(body.get("detail") or body.get("title") or error.reason)
    except (ValueError, AttributeError):
        return str(error.reason)
