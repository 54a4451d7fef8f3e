"""Reading a delivery from its HTTP parts (bot/web/event.py), on bytes alone."""

from __future__ import annotations

import json

import pytest

from model_assigner.bot.web.event import Event, Refused, from_http, header
from model_assigner.bot.web.signature import sign
from tests.bot.support import WEBHOOKS

SECRET = "It's a Secret to Everybody"
DELIVERY = "72d3162e-cc78-11e3-81ab-4c9367dc0958"


@pytest.fixture
def body() -> bytes:
    return (WEBHOOKS / "issues.opened.json").read_bytes()


def signed(body: bytes, **extra: str) -> dict[str, str]:
    return {"X-GitHub-Event": "issues", "X-GitHub-Delivery": DELIVERY,
            "X-Hub-Signature-256": sign(SECRET, body), **extra}


def refusal(headers: dict[str, str], body: bytes, secret: str | None = SECRET) -> Refused:
    with pytest.raises(Refused) as caught:
        from_http(headers, body, secret)
    return caught.value


def test_a_signed_github_delivery_reads_as_its_event(body: bytes) -> None:
    event = from_http(signed(body), body, SECRET)
    assert event == Event("issues", DELIVERY, json.loads(body))
    assert event.payload["action"] == "opened"


def test_header_names_are_not_case_sensitive(body: bytes) -> None:
    headers = {key.lower(): value for key, value in signed(body).items()}
    assert from_http(headers, body, SECRET).delivery == DELIVERY
    assert header({"x-github-event": "ping"}, "X-GitHub-Event") == "ping"
    assert header({"X-GitHub-Event": ""}, "X-GitHub-Event") is None


def test_the_signature_is_checked_before_the_body_is_parsed(body: bytes) -> None:
    # Not JSON, and unsigned: the answer is 401, never a parse error, so a
    # stranger learns nothing and costs no parsing.
    assert refusal(signed(body), b"{not json").status == 401
    wrong = refusal(signed(body, **{"X-Hub-Signature-256": sign("other", body)}), body)
    assert (wrong.status, wrong.outcome) == (401, "unauthorized")
    missing = dict(signed(body))
    del missing["X-Hub-Signature-256"]
    assert refusal(missing, body).status == 401


def test_dry_run_reads_unsigned_deliveries(body: bytes) -> None:
    headers = {"X-GitHub-Event": "issues"}
    assert from_http(headers, body, None).payload["action"] == "opened"
    assert from_http(headers, body, None).delivery is None


@pytest.mark.parametrize(("raw", "error"), [
    (b"{not json", "body is not JSON"),
    (b"\xff\xfe", "body is not JSON"),
    (b"[1, 2]", "body is not a JSON object"),
    (b"null", "body is not a JSON object"),
    (b"[" * 100_000 + b"]" * 100_000, "body is nested too deeply"),
])
def test_a_signed_body_that_is_no_json_object_is_a_400(raw: bytes, error: str) -> None:
    refused = refusal(signed(raw), raw)
    assert (refused.status, refused.error, refused.outcome) == (400, error, "bad_request")
    assert refused.body() == {"error": error, "outcome": "bad_request"}


def test_a_delivery_without_an_event_header_is_a_400(body: bytes) -> None:
    headers = signed(body)
    del headers["X-GitHub-Event"]
    assert (refusal(headers, body).status, refusal(headers, body).error) == (
        400, "missing X-GitHub-Event header")
