"""Shared by the bot's unit tests and the end-to-end tests: a throwaway App
key, GitHub's documented webhook payloads with what an App delivery adds, and
signed delivery headers."""

from __future__ import annotations

import copy
import functools
import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypedDict

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from model_assigner.bot.web.signature import sign

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "github"
WEBHOOKS = FIXTURES / "webhooks"
REST_EXAMPLES = FIXTURES / "rest-examples"

Payload = dict[str, Any]
PayloadFactory = Callable[[str], Payload]

API = "https://api.github.com"
REPO = "Codertocat/Hello-World"  # every documented issues payload is for this repository
INSTALLATION = 1
APP_ID = 4242
SLUG = "model-assigner-test"
BOT = f"{SLUG}[bot]"
SECRET = "webhook-secret-for-tests"
PERSON = "monalisa"

# Bodies whose estimates put an issue in a known band (with the real config/).
SMALL_BACKEND = "Estimated files: 3\nEstimated LOC: 150"
BIG_HOTFIX = "Estimated files: 8\nEstimated LOC: 800"


class IssueFields(TypedDict, total=False):
    """What a test sets on a payload's issue (see ``webhook``)."""

    labels: list[str]
    body: str
    milestone_due_on: str | None


def issue_fields(labels: list[str], body: str, milestone_due_on: str | None = None) -> IssueFields:
    return {"labels": labels, "body": body, "milestone_due_on": milestone_due_on}


@dataclass(frozen=True)
class AppKey:
    private_pem: str
    public_pem: str


@functools.cache
def app_key() -> AppKey:
    """A throwaway RSA key for Auth.AppAuth (made once per test session)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    public = (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    return AppKey(private, public)


@functools.cache
def _read_json(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


def webhook_payload(name: str) -> Payload:
    """A fresh deep copy of ``tests/fixtures/github/webhooks/<name>.json``, so a
    test may change it freely."""
    data: Payload = copy.deepcopy(_read_json(WEBHOOKS / f"{name}.json"))
    return data


def rest_example(operation: str, base: str = API) -> Any:
    """GitHub's documented example answer for an operation (URLs moved to ``base``)."""
    text = (REST_EXAMPLES / f"{operation}.json").read_text(encoding="utf-8")
    data = json.loads(text.replace("https://api.github.com", base))
    if isinstance(data, dict) and set(data) == {"value", "x-github-breaking-changes"}:
        data = data["value"]
    return data


def label_objects(names: list[str], base: str = API) -> list[dict[str, Any]]:
    """Label JSON as GitHub puts it in an issue."""
    template = rest_example("issues/get-label", base)
    out = []
    for i, name in enumerate(names):
        label = copy.deepcopy(template)
        label.update(id=7000 + i, name=name, url=f"{base}/repos/{REPO}/labels/{name}")
        out.append(label)
    return out


_UNSET: Any = object()


def webhook(
    name: str,
    *,
    installation: int | None = INSTALLATION,
    sender: str = "Codertocat",
    sender_type: str = "User",
    number: int | None = None,
    labels: list[str] | None = None,
    body: str | None = None,
    title: str | None = None,
    milestone_due_on: str | None = _UNSET,
    state: str | None = None,
    state_reason: str | None = _UNSET,
    action: str | None = None,
    label: str | None = None,
    base: str = API,
) -> dict[str, Any]:
    """A documented payload from tests/fixtures/github/webhooks, plus what a
    delivery to a GitHub App carries (``installation.id``), with the issue
    changed as asked. ``base`` moves the payload's API URLs."""
    text = (WEBHOOKS / f"{name}.json").read_text(encoding="utf-8")
    payload: dict[str, Any] = json.loads(text.replace("https://api.github.com", base))
    if installation is not None:
        payload["installation"] = {"id": installation, "node_id": "MDIzOkludGVncmF0aW9u"}
    else:
        payload.pop("installation", None)
    payload["sender"] = {**payload["sender"], "login": sender, "type": sender_type}
    if action is not None:
        payload["action"] = action
    if label is not None:
        payload["label"] = label_objects([label], base)[0]
    issue = payload["issue"]
    if number is not None:
        issue["number"] = number
        for key in ("url", "comments_url", "events_url", "html_url", "labels_url"):
            issue[key] = issue[key].replace("/issues/1", f"/issues/{number}").replace(
                "/issues/2", f"/issues/{number}"
            )
    if labels is not None:
        issue["labels"] = label_objects(labels, base)
    if body is not None:
        issue["body"] = body
    if title is not None:
        issue["title"] = title
    if milestone_due_on is not _UNSET:
        if milestone_due_on is None:
            issue["milestone"] = None
        else:
            milestone = issue.get("milestone") or json.loads(
                (WEBHOOKS / "issues.milestoned.json").read_text(encoding="utf-8")
            )["issue"]["milestone"]
            issue["milestone"] = {**milestone, "due_on": milestone_due_on}
    if state is not None:
        issue["state"] = state
        issue["closed_at"] = "2026-02-10T12:00:00Z" if state == "closed" else None
    if state_reason is not _UNSET:
        issue["state_reason"] = state_reason
    return payload


def encode(payload: Any) -> bytes:
    return json.dumps(payload).encode()


def delivery_headers(
    body: bytes,
    event: str = "issues",
    delivery: str | None = None,
    secret: str | None = SECRET,
) -> dict[str, str]:
    """The headers GitHub sends with a delivery (signed with ``secret``)."""
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "GitHub-Hookshot/test",
        "X-GitHub-Event": event,
        "X-GitHub-Delivery": delivery or str(uuid.uuid4()),
        "X-GitHub-Hook-ID": "1",
        "X-GitHub-Hook-Installation-Target-ID": str(APP_ID),
        "X-GitHub-Hook-Installation-Target-Type": "integration",
    }
    if secret is not None:
        headers["X-Hub-Signature-256"] = sign(secret, body)
    return headers
