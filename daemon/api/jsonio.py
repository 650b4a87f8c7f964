"""Response bodies encoded by orjson: listings of a thousand images are the API's heaviest work.

The standard library's encoder took about a fifth of a ``GET /api/v1/images`` request (50 rows, ~90 kB) and runs
in Python under the GIL that the worker's threads share; orjson encodes the same body several times faster in C.
Request bodies are still parsed by Flask's default provider, so malformed JSON gets the same 400 as before.
Two deliberate differences from ``json.dumps``: NaN and infinities become ``null`` (the standard library writes
``NaN``, which is not JSON), and datetimes that reach the encoder are RFC 3339 rather than HTTP dates.
"""

from __future__ import annotations

from typing import Any

import orjson
from flask import Response
from flask.json.provider import DefaultJSONProvider

OPTIONS = orjson.OPT_NON_STR_KEYS


class OrjsonProvider(DefaultJSONProvider):
    """Flask's JSON provider with orjson for output; ``loads`` stays the default."""

    def dumps(self, obj: Any, **kwargs: Any) -> str:
        return self._encode(obj, kwargs).decode()

    def response(self, *args: Any, **kwargs: Any) -> Response:
        body = self._encode(self._prepare_response_obj(args, kwargs), {})
        return self._app.response_class(body + b"\n", mimetype=self.mimetype)

    def _encode(self, obj: Any, kwargs: dict[str, Any]) -> bytes:
        indent = orjson.OPT_INDENT_2 if kwargs.get("indent") or self._app.debug else 0
        return orjson.dumps(obj, default=self.default, option=OPTIONS | indent)
