"""Hostile input at the webhook endpoint, with valid signatures: whatever the
JSON (random shapes, missing and null fields, huge strings, non-ASCII and
emoji labels, label names with ':', absurd numbers), the answer is never a
500 and never a traceback, and an event that is ignored changes nothing in
the store. Fuzzed with hypothesis over create_app in dry-run mode and with
GitHub answered by `responses` (every call the bot can make answered
generically, whatever the repository or issue).

Also: a replayed delivery id, a signature over a different body, the legacy
``sha1=`` scheme alone; and an unsafe ``.github/model-assigner.yml`` served by
GitHub to a real delivery.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import responses
from flask.testing import FlaskClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from model_assigner.bot.comment import MARKER
from model_assigner.bot.web.app import create_app
from model_assigner.bot.web.signature import sign
from tests.bot.hostile_support import HOST, AnyGitHub, make_settings
from tests.bot.rest_mock import COMMIT_SHA, RestMock
from tests.bot.support import (
    REPO,
    SECRET,
    SMALL_BACKEND,
    delivery_headers,
    encode,
    issue_fields,
    rest_example,
    webhook,
)
from tests.helpers import store_files

FUZZ = settings(
    max_examples=120,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
EVENTS = ["issues.opened", "issues.edited", "issues.labeled", "issues.unlabeled",
          "issues.milestoned", "issues.demilestoned", "issues.reopened", "issues.deleted"]
# Where a payload is read: each may be deleted, nulled or replaced.
PATHS = [
    ("action",), ("issue",), ("issue", "number"), ("issue", "labels"), ("issue", "body"),
    ("issue", "title"), ("issue", "milestone"), ("issue", "milestone", "due_on"),
    ("issue", "state"), ("issue", "state_reason"), ("issue", "updated_at"), ("issue", "user"),
    ("issue", "comments"), ("repository",), ("repository", "full_name"),
    ("repository", "default_branch"), ("installation",), ("installation", "id"), ("sender",),
    ("sender", "login"), ("sender", "type"), ("label",), ("label", "name"),
]
# Whatever the answer says, it is one of these, and these change nothing.
UNCHANGING = {"ignored", "duplicate", "pong", "bad_request", "unauthorized"}


# -- strategies -------------------------------------------------------------------------

json_leaf = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**30), max_value=10**30)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=30)
)
json_value = st.recursive(
    json_leaf,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                                 max_size=4),
    max_leaves=12,
)
weird_text = st.sampled_from([
    "", " ", "model:", "model:😀", "model:glm-4.7", "model: ", ":", "P0:", "p0", "P0",
    "priority: high", "😀" * 50, "\u202e\u0000\ufeff", "ö/ü", "a/b/c", "../../etc",
    "Estimated LOC: 99999999999999999999", "Estimated files: -1", "Depends on #" + "9" * 40,
    "x" * 300_000, "\n" * 5000, "### Estimated files\n\n" + "9" * 5000,
]) | st.text(max_size=60)
absurd_number = st.sampled_from([0, -1, 2**31, 2**63, 10**20, 99999999999999999999, 1.5, -0.0])
label_object = st.builds(
    lambda name, extra: {"id": 1, "name": name, "color": "ededed", **extra},
    weird_text, st.dictionaries(st.text(max_size=5), json_leaf, max_size=2),
)


@st.composite
def mutated_payload(draw: st.DrawFn) -> tuple[str, dict[str, Any]]:
    """A documented payload with some fields deleted, nulled or replaced."""
    name = draw(st.sampled_from(EVENTS))
    payload = webhook(name, label=draw(st.sampled_from([None, "P0", "model:opus-4.6"])))
    for _ in range(draw(st.integers(min_value=0, max_value=5))):
        path = draw(st.sampled_from(PATHS))
        parent: Any = payload
        for key in path[:-1]:
            parent = parent.get(key) if isinstance(parent, dict) else None
        if not isinstance(parent, dict):
            continue
        op = draw(st.sampled_from(["delete", "null", "json", "text", "number", "labels"]))
        if op == "delete":
            parent.pop(path[-1], None)
        elif op == "null":
            parent[path[-1]] = None
        elif op == "json":
            parent[path[-1]] = draw(json_value)
        elif op == "text":
            parent[path[-1]] = draw(weird_text)
        elif op == "number":
            parent[path[-1]] = draw(absurd_number)
        else:
            parent[path[-1]] = draw(st.lists(label_object | json_value, max_size=6))
    return "issues", payload


random_payload = st.tuples(
    st.sampled_from(["issues", "issues", "ping", "installation", "push", "issue_comment",
                     "ISSUES", "", "x" * 200]),
    st.dictionaries(st.text(max_size=10), json_value, max_size=6)
    | st.builds(lambda p: {**webhook("issues.opened"), **p},
                st.dictionaries(st.sampled_from(["action", "issue", "repository",
                                                 "installation", "sender"]), json_value,
                                max_size=3)),
)


# -- the apps ---------------------------------------------------------------------------


def post(client: FlaskClient, event: str, body: bytes, delivery: str | None = None) -> Any:
    return client.post("/webhook", data=body, headers=delivery_headers(body, event, delivery))


def check(response: Any, state: Path, before: bytes | None) -> None:
    assert response.status_code < 500, response.get_data(as_text=True)
    text = response.get_data(as_text=True)
    assert "Traceback" not in text and 'File "' not in text
    answer = json.loads(text)
    assert isinstance(answer, dict)
    outcome = answer.get("status") or answer.get("outcome") or (
        "bad_request" if response.status_code == 400 else None)
    if outcome in UNCHANGING:
        after = store_files(state)
        assert after == before, f"{outcome}: the store changed"


def snapshot(state: Path) -> bytes | None:
    return store_files(state)


# -- fuzzing ----------------------------------------------------------------------------


@FUZZ
@given(case=mutated_payload())
def test_mutated_documented_payloads_never_fail(
    endpoint: tuple[FlaskClient, Path], case: tuple[str, dict[str, Any]]
) -> None:
    client, state = endpoint
    event, payload = case
    before = snapshot(state)
    check(post(client, event, encode(payload)), state, before)


@FUZZ
@given(case=random_payload)
def test_random_json_never_fails(
    endpoint: tuple[FlaskClient, Path], case: tuple[str, dict[str, Any]]
) -> None:
    client, state = endpoint
    event, payload = case
    before = snapshot(state)
    check(post(client, event, encode(payload)), state, before)


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=st.binary(max_size=300) | st.text(max_size=200).map(str.encode))
def test_arbitrary_signed_bytes_never_fail(endpoint: tuple[FlaskClient, Path], body: bytes) -> None:
    client, state = endpoint
    before = snapshot(state)
    response = post(client, "issues", body)
    check(response, state, before)
    assert response.status_code in (200, 202, 400)


def test_absurd_and_non_ascii_fields_are_decided_or_refused(
    endpoint: tuple[FlaskClient, Path],
) -> None:
    client, state = endpoint
    cases = [
        issue_fields(["P0", "backend", "model:😀", "prio:rity", "日本語"],
                     "Estimated LOC: 99999999999999999999\nEstimated files: 99999999999999999999"),
        issue_fields(["😀" * 100, "model:", "model:gpt-4:turbo"], "x" * 200_000),
        issue_fields([":", "::", "P0:"], "Depends on #99999999999999999999\nBlocks #0"),
    ]
    for number, fields in enumerate(cases, start=1):
        payload = webhook("issues.opened", number=number, **fields)
        payload["issue"]["milestone"] = {"due_on": "9999-99-99T99:99:99Z", "title": None}
        response = post(client, "issues", encode(payload))
        check(response, state, snapshot(state))
        assert response.status_code == 200, response.get_data(as_text=True)
    payload = webhook("issues.opened")
    payload["issue"]["number"] = 10**20
    payload["installation"]["id"] = 10**20
    check(post(client, "issues", encode(payload)), state, snapshot(state))


@pytest.mark.parametrize("name", ["../../x", "a/b?c=d", "a/b#1", "ö/ü", "a/b/c", "a b/c", "/"])
def test_a_repository_name_github_would_not_give_is_refused(
    endpoint: tuple[FlaskClient, Path], name: str
) -> None:
    client, state = endpoint
    payload = webhook("issues.opened")
    payload["repository"]["full_name"] = name
    before = snapshot(state)
    response = post(client, "issues", encode(payload))
    check(response, state, before)
    assert response.status_code == 400
    assert snapshot(state) == before


# -- replays and signatures ----------------------------------------------------------------


def test_a_replayed_delivery_id_changes_nothing(endpoint: tuple[FlaskClient, Path]) -> None:
    client, state = endpoint
    body = encode(webhook("issues.opened", **issue_fields(["P0", "backend"], SMALL_BACKEND)))
    first = post(client, "issues", body, delivery="replayed-1")
    assert first.status_code == 200 and first.get_json()["status"] == "assigned"
    before = snapshot(state)
    for changed in (body, encode(webhook("issues.edited"))):  # the same id, any body
        again = post(client, "issues", changed, delivery="replayed-1")
        assert (again.status_code, again.get_json()) == (
            200, {"status": "duplicate", "delivery": "replayed-1"}
        )
    assert snapshot(state) == before


def test_a_signature_over_another_body_is_401(endpoint: tuple[FlaskClient, Path]) -> None:
    client, state = endpoint
    signed_body = encode(webhook("issues.opened"))
    sent = encode(webhook("issues.opened", **issue_fields(["P0"], "")))
    headers = delivery_headers(signed_body)
    before = snapshot(state)
    for body in (sent, signed_body + b" ", signed_body[:-1]):
        response = client.post("/webhook", data=body, headers=headers)
        assert response.status_code == 401
        assert response.get_json()["error"] == "missing or wrong X-Hub-Signature-256"
    assert snapshot(state) == before


def test_the_sha1_scheme_alone_is_401(endpoint: tuple[FlaskClient, Path]) -> None:
    import hashlib
    import hmac

    client, state = endpoint
    body = encode(webhook("issues.opened"))
    sha1 = "sha1=" + hmac.new(SECRET.encode(), body, hashlib.sha1).hexdigest()
    headers = delivery_headers(body, secret=None)
    before = snapshot(state)
    # GitHub's legacy header, correct for this body, with no X-Hub-Signature-256...
    assert client.post("/webhook", data=body,
                       headers={**headers, "X-Hub-Signature": sha1}).status_code == 401
    # ...or the sha1 value put in the sha256 header.
    assert client.post("/webhook", data=body,
                       headers={**headers, "X-Hub-Signature-256": sha1}).status_code == 401
    # The right sha256 signature is what works.
    assert client.post("/webhook", data=body,
                       headers={**headers, "X-Hub-Signature-256": sign(SECRET, body)}
                       ).status_code == 200
    assert snapshot(state) != before


# -- an unsafe repository config, through a delivery ---------------------------------------


UNSAFE_CONFIGS = {
    "python-object": "scoring: !!python/object/apply:os.system ['touch {marker}']\n",
    "python-object-new": "scoring: !!python/object/new:subprocess.Popen [['touch', '{marker}']]\n",
    "billion-laughs": "a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n"
                      + "".join(f"{n}: &{n} [{', '.join(['*' + p] * 9)}]\n"
                                for p, n in zip("abcdefgh", "bcdefghi", strict=True))
                      + "scoring: {priority_weights: *i}\n",
}


@pytest.mark.parametrize("name", [*UNSAFE_CONFIGS, "ten-megabytes"])
def test_an_unsafe_repo_config_is_refused_in_the_comment(tmp_path: Path, name: str) -> None:
    marker = tmp_path / "pwned"
    app = create_app(make_settings(tmp_path, dry_run=False))
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        gh = RestMock(rsps)
        gh.app()
        gh.token()
        gh.branch()
        gh.tree()
        if name == "ten-megabytes":
            # GitHub's contents API does not inline a file over 1 MB: it says
            # its size, with empty content and no encoding.
            content = rest_example("repos/get-content")
            content.update(size=10 * 1024 * 1024, content="", encoding="none",
                           name="model-assigner.yml", path=".github/model-assigner.yml")
            rsps.get(f"{HOST}/repos/{REPO}/contents/.github/model-assigner.yml?ref={COMMIT_SHA}",
                     json=content)
            says = "larger than"
        else:
            gh.config(UNSAFE_CONFIGS[name].replace("{marker}", str(marker)))
            says = "aliases" if name == "billion-laughs" else "not valid YAML"
        AnyGitHub(rsps)
        payload = webhook("issues.opened", **issue_fields(["P0", "backend"], SMALL_BACKEND))
        response = post(app.test_client(), "issues", encode(payload))
        comments = [json.loads(c.request.body)["body"] for c in rsps.calls
                    if c.request.method == "POST" and c.request.url.endswith("/comments")]
    assert response.status_code == 200, response.get_data(as_text=True)
    answer = response.get_json()
    assert answer["model"] == "glm-4.7"  # the defaults
    assert says in answer["config_problem"]
    [comment] = comments
    assert comment.startswith(MARKER) and says in comment
    assert not marker.exists()


def test_a_persons_label_for_any_model_adds_no_metric_series(
    endpoint: tuple[FlaskClient, Path],
) -> None:
    client, _ = endpoint
    for n in range(3):
        name = f"model:made-up-{n}-😀"
        payload = webhook("issues.labeled", number=50 + n, label=name,
                          **issue_fields(["P0", name], SMALL_BACKEND))
        response = post(client, "issues", encode(payload))
        assert response.get_json()["status"] == "override", response.get_json()
    metrics = client.get("/metrics").get_data(as_text=True)
    assert "made-up" not in metrics and "😀" not in metrics


@pytest.mark.parametrize(
    ("path", "value"),
    [(("issue", "number"), True), (("issue", "number"), 0), (("issue", "number"), "1"),
     (("installation", "id"), -1), (("installation", "id"), True), (("installation", "id"), 0)],
)
def test_numbers_that_are_not_ids_are_refused(
    endpoint: tuple[FlaskClient, Path], path: tuple[str, str], value: Any
) -> None:
    client, state = endpoint
    payload = webhook("issues.opened")
    payload[path[0]][path[1]] = value
    before = snapshot(state)
    response = post(client, "issues", encode(payload))
    check(response, state, before)
    if path[0] == "issue" or response.status_code != 200:  # dry-run needs no installation
        assert response.status_code == 400, response.get_json()
        assert snapshot(state) == before
