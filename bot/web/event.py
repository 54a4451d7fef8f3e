"""A webhook delivery read from its HTTP parts, with no web framework.

As gidgethub's ``Event.from_http``: the web app hands over the headers and the
raw body, and gets back either an ``Event`` or the refusal GitHub should see.
Kept free of Flask and of I/O so that every refusal is tested on bytes alone,
and so that the order of the checks is one rule in one place: the signature
is checked over the raw bytes before anything of the body is parsed, which
means an unsigned stranger can never make the server parse JSON.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from model_assigner.bot.web.signature import verify


@dataclass(frozen=True)
class Event:
    """What a delivery says: GitHub's event name, its delivery id (unsigned:
    checked by whoever stores it) and the JSON object of its body."""

    name: str
    delivery: str | None
    payload: dict[str, Any]


class Refused(Exception):
    """A delivery answered without being worked on: the HTTP status, the
    error GitHub shows in the App's delivery log, and the outcome counted in
    the metrics."""

    def __init__(self, status: int, error: str, outcome: str) -> None:
        super().__init__(error)
        self.status = status
        self.error = error
        self.outcome = outcome

    def body(self) -> dict[str, Any]:
        return {"error": self.error, "outcome": self.outcome}


def header(headers: Mapping[str, str], name: str) -> str | None:
    """A header by name, whatever its case (HTTP header names are not case
    sensitive; a plain dict from a test or a redelivery is)."""
    value = headers.get(name)
    if value is None:
        wanted = name.lower()
        value = next((v for k, v in headers.items() if k.lower() == wanted), None)
    return value or None


def from_http(headers: Mapping[str, str], body: bytes, secret: str | None) -> Event:
    """The delivery in ``body``, or ``Refused``. ``secret`` None is dry-run,
    where signatures are not checked (the server then binds loopback only)."""
    if secret is not None and not verify(secret, body, header(headers, "X-Hub-Signature-256")):
        raise Refused(401, "missing or wrong X-Hub-Signature-256", "unauthorized")
    name = header(headers, "X-GitHub-Event")
    if not name:
        raise Refused(400, "missing X-GitHub-Event header", "bad_request")
    try:
        payload = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise Refused(400, "body is not JSON", "bad_request") from None
    except RecursionError:  # nested deeper than Python's stack: no payload of GitHub's
        raise Refused(400, "body is nested too deeply", "bad_request") from None
    if not isinstance(payload, dict):
        raise Refused(400, "body is not a JSON object", "bad_request")
    return Event(name, header(headers, "X-GitHub-Delivery"), payload)
