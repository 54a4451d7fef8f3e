"""Hostile input, round 2 (issue 12): what one issue author, one repository's
admin or one stray client could do to every other repository, each refused
in the layer where the bound lives, through the real Flask app with signed
GitHub payloads."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import responses
from flask.testing import FlaskClient

from bot.app import create_app
from bot.issue_task import issue_to_task
from bot.repo_config import LabelsConfig
from bot.store import MAX_DEPENDENCIES, State, Store
from core.loader import load_engine_config
from tests.bot.support import REPO, SMALL_BACKEND, delivery_headers, encode, issue_fields, webhook
from tests.bot.test_hostile_webhook import AnyGitHub, make_settings
from tests.helpers import CONFIG_DIR

NOW = datetime(2026, 11, 10, 12, 0, tzinfo=UTC)
# The largest body GitHub allows, naming as many issues as fit.
HUGE_DEPENDS = ("Depends on " + ", ".join(f"#{n}" for n in range(1, 20_000)))[:65_536]


@pytest.fixture(params=["dry-run", "github"])
def endpoint(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[FlaskClient, Path]]:
    dry_run = request.param == "dry-run"
    app_settings = make_settings(tmp_path, dry_run)
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        if not dry_run:
            AnyGitHub(rsps)
        yield create_app(app_settings).test_client(), app_settings.state_path


def post(client: FlaskClient, body: bytes, delivery: str | None = None, event: str = "issues"
         ) -> tuple[int, dict[str, object]]:
    response = client.post("/webhook", data=body, headers=delivery_headers(body, event, delivery))
    answer = json.loads(response.get_data(as_text=True))
    return response.status_code, answer


# -- 1: what one issue can put in the store ------------------------------------------------


def test_a_body_naming_ten_thousand_issues_keeps_a_bounded_list() -> None:
    assert HUGE_DEPENDS.count("#") > 9_000
    task = issue_to_task(
        {"number": 7, "body": HUGE_DEPENDS + "\nBlocks " + HUGE_DEPENDS[11:]},
        REPO, LabelsConfig(), None, [f"o/r#{n}" for n in range(5000)],
    )
    assert len(task.dependencies) == MAX_DEPENDENCIES
    assert task.dependencies[:3] == [f"{REPO}#1", f"{REPO}#2", f"{REPO}#3"]
    assert f"{REPO}#7" not in task.dependencies  # never itself
    assert len(task.blocks) <= 2 * MAX_DEPENDENCIES


def test_an_issue_naming_ten_thousand_dependencies_stores_a_bounded_list(
    endpoint: tuple[FlaskClient, Path],
) -> None:
    client, state_path = endpoint
    payload = webhook("issues.opened", **issue_fields(["P2"], HUGE_DEPENDS))
    status, answer = post(client, encode(payload))
    assert status == 200, answer
    stored = json.loads(state_path.read_text())["dependencies"]
    [deps] = stored.values()
    assert len(deps) == MAX_DEPENDENCIES
    assert state_path.stat().st_size < 16_000


def test_a_store_written_before_the_bound_is_read_with_the_lists_cut(tmp_path: Path) -> None:
    quotas = load_engine_config(CONFIG_DIR).quotas
    store = Store(tmp_path / "state.json", quotas)
    with store.transaction(NOW) as state:
        state.dependencies["o/r#1"] = ["o/r#2"]
    raw = json.loads(store.path.read_text())
    raw["dependencies"]["o/r#1"] = [f"o/r#{n}" for n in range(10_869)] + ["x" * 10_000]
    store.path.write_text(json.dumps(raw, indent=1))
    assert store.read().dependencies["o/r#1"] == [f"o/r#{n}" for n in range(MAX_DEPENDENCIES)]


def test_a_bystander_transaction_reparses_and_copies_no_other_issues_dependencies(
    tmp_path: Path,
) -> None:
    """Another worker's write of one issue costs this worker a parse of that
    issue only: the dependency lists of the 300 others are the objects it
    already held (not parsed again), and a transaction's copy shares them."""
    quotas = load_engine_config(CONFIG_DIR).quotas
    path = tmp_path / "state.json"
    writer, reader = Store(path, quotas), Store(path, quotas)

    def fill(state: State) -> None:
        for issue in range(300):
            state.dependencies[f"o/r#{issue}"] = [f"o/r#{n}" for n in range(1000, 1050)]

    writer.apply(NOW, fill)
    before = reader.view(lambda state: dict(state.dependencies))
    writer.apply(NOW, lambda state: state.dependencies.__setitem__("other/repo#1", ["o/r#5"]))
    after = reader.view(lambda state: dict(state.dependencies))
    assert "other/repo#1" in after
    assert all(after[key] is before[key] for key in before)

    shared: list[bool] = []
    reader.apply(NOW, lambda state: shared.append(
        all(state.dependencies[key] is after[key] for key in after)))
    assert shared == [True]


# -- 11: delivery ids -------------------------------------------------------------------


@pytest.mark.parametrize("delivery", ["x" * 8192, "a" * 65, "../../etc", "id with space", "é"])
def test_a_delivery_id_github_would_not_send_is_refused(
    endpoint: tuple[FlaskClient, Path], delivery: str
) -> None:
    client, state_path = endpoint
    payload = webhook("issues.opened", **issue_fields(["P2"], "text"))
    body = encode(payload)
    headers = delivery_headers(body, "issues", None)
    headers["X-GitHub-Delivery"] = delivery
    try:
        response = client.post("/webhook", data=body, headers=headers)
    except ValueError:  # werkzeug refuses a header it cannot encode: never reaches us
        assert not delivery.isascii()
        return
    assert response.status_code == 400, response.get_data(as_text=True)
    assert "X-GitHub-Delivery" in response.get_json()["error"]
    assert not state_path.exists() or delivery not in state_path.read_text()


def test_a_uuid_delivery_id_is_remembered(endpoint: tuple[FlaskClient, Path]) -> None:
    client, state_path = endpoint
    body = encode(webhook("issues.opened", **issue_fields(["P2"], "text")))
    delivery = "72d3162e-cc78-11e3-81ab-4c9367dc0958"
    assert post(client, body, delivery)[0] == 200
    assert delivery in json.loads(state_path.read_text())["deliveries"]
    assert post(client, body, delivery)[1]["status"] == "duplicate"


# -- 12: nesting deeper than the stack ------------------------------------------------------


@pytest.mark.parametrize("depth", [100_000, 1_000_000])
@pytest.mark.parametrize("shape", ["[", '{"a":'])
def test_a_signed_body_nested_too_deep_is_400(
    endpoint: tuple[FlaskClient, Path], depth: int, shape: str
) -> None:
    client, state_path = endpoint
    body = (shape * depth).encode()
    status, answer = post(client, body)
    assert status == 400, answer
    assert not state_path.exists()


# -- 3: what a repository's config can make scoring cost ------------------------------------


def deliver_with_config(tmp_path: Path, config: str, body: str) -> tuple[dict[str, object], str]:
    """One opened issue of REPO with ``config`` as its .github/model-assigner.yml:
    the webhook's answer and the comment written."""
    from tests.bot.rest_mock import RestMock

    app = create_app(make_settings(tmp_path, dry_run=False))
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        gh = RestMock(rsps)
        gh.app()
        gh.token()
        gh.branch()
        gh.tree()
        gh.config(config)
        AnyGitHub(rsps)
        payload = webhook("issues.opened", **issue_fields(["P0", "backend"], body))
        status, answer = post(app.test_client(), encode(payload))
        comments = [json.loads(c.request.body)["body"] for c in rsps.calls
                    if c.request.method == "POST" and c.request.url.endswith("/comments")]
    assert status == 200, answer
    [comment] = comments
    return answer, comment


def test_a_thirty_kilobyte_keyword_list_is_refused_not_run(tmp_path: Path) -> None:
    words = [f"w{n:05d}" for n in range(4000)]
    config = "scoring:\n  complex_keywords: [" + ", ".join(words) + "]\n"
    assert len(config) > 30_000
    body = SMALL_BACKEND + "\n" + " ".join(words[-5:]) * 100
    answer, comment = deliver_with_config(tmp_path, config, body)
    assert "complex_keywords" in str(answer["config_problem"])
    assert "at most 64 items" in str(answer["config_problem"])
    assert answer["model"] == "glm-4.7"  # the defaults decided
    assert "complex_keywords" in comment


def test_scoring_runs_outside_the_store_lock(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                            ) -> None:
    """The real scoring function, watched: whenever it runs for a delivery, the
    store's lock is free (another process could take it)."""
    import fcntl

    import core.assessment

    real = core.assessment.calculate_task_value
    lock_path = tmp_path / "data" / "state.json.lock"
    free: list[bool] = []

    def watched(*args: object, **kwargs: object) -> object:
        with lock_path.open("a") as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                free.append(False)
            else:
                free.append(True)
                fcntl.flock(handle, fcntl.LOCK_UN)
        return real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(core.assessment, "calculate_task_value", watched)
    app = create_app(make_settings(tmp_path, dry_run=True))
    body = encode(webhook("issues.opened", **issue_fields(["P1"], "Depends on #3")))
    status, answer = post(app.test_client(), body)
    assert status == 200, answer
    assert free and all(free)
