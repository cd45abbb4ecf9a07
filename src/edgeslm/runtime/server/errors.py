"""The server's refusals: a status, a message the client can act on, and an OpenAI-style JSON body.
Every layer (the protocol, the limits, the routes) answers with this one shape."""

from __future__ import annotations

import json
from typing import Any


class HttpError(Exception):
    """A request the server refuses, with the status and a message the client can act on."""

    def __init__(self, status: int, message: str, kind: str = "invalid_request_error",
                 headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status, self.message, self.kind = status, message, kind
        self.headers = headers or {}

    def body(self) -> bytes:
        return json.dumps({"error": {"message": self.message, "type": self.kind, "code": self.status}},
                          ensure_ascii=False).encode("utf-8")


def _no_constants(name: str) -> Any:
    raise HttpError(400, f"the body's JSON has {name}, which JSON does not allow (send a number or null)")


def parse_json(body: bytes) -> Any:
    """A request body as JSON, or a 400 that says what is wrong with it. The Content-Type is not
    checked: `curl -d` labels JSON as a form, and the body must parse anyway."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise HttpError(400, f"the body is not valid UTF-8 (byte {exc.start})") from None
    try:
        # Python's json reads NaN and Infinity, which are not JSON: refused, as any other parser would
        return json.loads(text, parse_constant=_no_constants)
    except json.JSONDecodeError as exc:
        raise HttpError(400, f"the body is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from None
    except RecursionError:
        raise HttpError(400, "the body's JSON is nested too deeply") from None
    except HttpError:
        raise
    except ValueError:  # Python refuses integers past 4300 digits (a guard against quadratic parsing)
        raise HttpError(400, "the body's JSON has a number with too many digits") from None
