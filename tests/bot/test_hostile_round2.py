"""Hostile input, round 2 (issue 12): what one issue author, one repository's
admin or one stray client could do to every other repository, each refused
in the layer where the bound lives, through the real Flask app with signed
GitHub payloads."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import responses
from flask.testing import FlaskClient

from model_assigner.bot.config_files import load_engine_config
from model_assigner.bot.github.repo_config import (
    EffectiveConfig,
    LabelsConfig,
    effective_config,
    load_labels_config,
)
from model_assigner.bot.issue_task import issue_to_task
from model_assigner.bot.store.json_store import Store
from model_assigner.bot.store.state import MAX_DEPENDENCIES, State
from model_assigner.bot.web.app import create_app
from model_assigner.core.config import ScoringConfig
from model_assigner.core.loader import ConfigError
from tests.bot.hostile_support import AnyGitHub, make_settings, post
from tests.bot.support import REPO, SMALL_BACKEND, delivery_headers, encode, issue_fields, webhook
from tests.helpers import CONFIG_DIR, store_files, store_text

NOW = datetime(2026, 11, 10, 12, 0, tzinfo=UTC)
# The largest body GitHub allows, naming as many issues as fit.
HUGE_DEPENDS = ("Depends on " + ", ".join(f"#{n}" for n in range(1, 20_000)))[:65_536]


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
    stored = json.loads(store_text(state_path))["dependencies"]
    [deps] = stored.values()
    assert len(deps) == MAX_DEPENDENCIES
    assert state_path.stat().st_size < 16_000


def test_a_store_written_before_the_bound_is_read_with_the_lists_cut(tmp_path: Path) -> None:
    quotas = load_engine_config(CONFIG_DIR).quotas
    store = Store(tmp_path / "state.json", quotas)
    with store.transaction(NOW) as state:
        state.dependencies["o/r#1"] = ["o/r#2"]
    raw = json.loads(store_text(store.path))
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
    assert not state_path.exists() or delivery not in store_text(state_path)


def test_a_uuid_delivery_id_is_remembered(endpoint: tuple[FlaskClient, Path]) -> None:
    client, state_path = endpoint
    body = encode(webhook("issues.opened", **issue_fields(["P2"], "text")))
    delivery = "72d3162e-cc78-11e3-81ab-4c9367dc0958"
    assert post(client, body, delivery)[0] == 200
    assert delivery in json.loads(store_text(state_path))["deliveries"]
    assert post(client, body, delivery)[1]["status"] == "duplicate"


# -- 12: nesting deeper than the stack ------------------------------------------------------


@pytest.mark.parametrize("depth", [100_000, 1_000_000])
@pytest.mark.parametrize("shape", ["[", '{"a":'])
def test_a_signed_body_nested_too_deep_is_400(
    endpoint: tuple[FlaskClient, Path], depth: int, shape: str
) -> None:
    client, state_path = endpoint
    before = store_files(state_path)  # written at start-up
    body = (shape * depth).encode()
    status, answer = post(client, body)
    assert status == 400, answer
    assert store_files(state_path) == before


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

    import model_assigner.core.assessment as assessment

    real = assessment.calculate_task_value
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

    monkeypatch.setattr(assessment, "calculate_task_value", watched)
    app = create_app(make_settings(tmp_path, dry_run=True))
    body = encode(webhook("issues.opened", **issue_fields(["P1"], "Depends on #3")))
    status, answer = post(app.test_client(), body)
    assert status == 200, answer
    assert free and all(free)


# -- 4: what a repository's config may change -----------------------------------------------


def effective(text: str, scoring: ScoringConfig | None = None) -> EffectiveConfig:
    engine = load_engine_config(CONFIG_DIR)
    return effective_config(
        text, scoring or engine.scoring, load_labels_config(CONFIG_DIR), engine.catalog
    )


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("scoring:\n  token_estimates: {simple: [0, 0], moderate: [0, 0], complex: [0, 0], "
         "highly_complex: [0, 0]}\n", "scoring.token_estimates"),
        ("scoring:\n  token_estimates: {simple: [1000000000000, 1000000000000]}\n",
         "scoring.token_estimates"),
        ("scoring:\n  quota_strategy: maximize_value\n", "scoring.quota_strategy"),
        ("scoring:\n  value_bands: [{name: all, min_value: 0, tiers: [premium], "
         "preferred: [opus-4.6]}]\n", "scoring.value_bands"),
        ("scoring:\n  domain_token_factors: {backend: {input: 0, output: 0}}\n",
         "scoring.domain_token_factors"),
        ("scoring:\n  repository_may_override: [token_estimates]\n",
         "scoring.repository_may_override"),
        ("scoring:\n  optimal: {time_limit_seconds: 30}\n", "scoring.optimal"),
    ],
)
def test_a_repository_cannot_set_what_its_issues_cost(text: str, key: str) -> None:
    engine = load_engine_config(CONFIG_DIR)
    result = effective(text + "  complex_keywords: [rewrite]\n")
    assert result.problem is None
    assert result.refused is not None and key in result.refused
    assert result.scoring == engine.scoring.model_copy(update={"complex_keywords": ["rewrite"]})


def test_a_repositorys_numbers_are_clamped_to_the_operators_range() -> None:
    result = effective(
        "scoring:\n  priority_weights: {P0: 500, P3: 35}\n"
        "  time_sensitivity_bonuses: {immediate: 1000}\n  default_priority_weight: 90\n"
    )
    assert result.problem is None
    assert result.scoring.priority_weights["P0"] == 40  # the operator's largest weight
    assert result.scoring.priority_weights["P3"] == 35  # within range: as the repository says
    assert result.scoring.time_sensitivity_bonuses.immediate == 15
    assert result.scoring.default_priority_weight == 40
    assert result.refused is not None
    assert "scoring.priority_weights.P0: 500 clamped to 40" in result.refused


def test_the_operator_can_widen_what_a_repository_may_set_and_it_is_clamped() -> None:
    engine = load_engine_config(CONFIG_DIR)
    wider = engine.scoring.model_copy(update={
        "repository_may_override": [*engine.scoring.repository_may_override, "token_estimates"]
    })
    result = effective(
        "scoring:\n  token_estimates: {simple: [0, 0], highly_complex: [1000000000000, 10]}\n",
        wider,
    )
    assert result.problem is None
    estimates = result.scoring.token_estimates
    assert estimates["simple"] == (7500, 1250)  # the operator's smallest
    assert estimates["highly_complex"] == (150_000, 1250)  # largest input, smallest output
    assert result.refused is not None and "clamped" in result.refused


def test_the_operators_list_names_scoring_keys_only(config_copy: Path) -> None:
    text = (config_copy / "scoring.yaml").read_text()
    (config_copy / "scoring.yaml").write_text(text + "\nrepository_may_override: [api_budget]\n")
    with pytest.raises(ConfigError, match="repository_may_override: 'api_budget'"):
        load_engine_config(config_copy)


def test_refused_settings_are_named_in_the_comment_and_charge_the_operators_estimate(
    tmp_path: Path,
) -> None:
    huge = "[1000000000000, 1000000000000]"
    config = (f"scoring:\n  token_estimates: {{simple: {huge}, moderate: {huge}, complex: {huge}, "
              f"highly_complex: {huge}}}\n")
    answer, comment = deliver_with_config(tmp_path, config, SMALL_BACKEND)
    assert answer["model"] == "glm-4.7" and answer["tokens"] == 31_000  # the operator's numbers
    assert "scoring.token_estimates" in str(answer["config_refused"])
    assert "scoring.token_estimates" in comment and "refused" in comment


# -- 8: a config file that is a symlink or a submodule ------------------------------------------


@pytest.mark.parametrize("kind", ["symlink", "submodule"])
def test_a_config_that_is_a_symlink_or_submodule_falls_back_to_the_defaults(
    tmp_path: Path, kind: str
) -> None:
    from tests.bot.rest_mock import COMMIT_SHA, RestMock
    from tests.bot.support import rest_example

    app = create_app(make_settings(tmp_path, dry_run=False))
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        gh = RestMock(rsps)
        gh.app()
        gh.token()
        gh.branch()
        gh.tree()
        content = rest_example(f"repos/get-content.response-if-content-is-a-{kind}")
        content.update(name="model-assigner.yml", path=".github/model-assigner.yml")
        rsps.get(f"https://api.github.com:443/repos/{REPO}/contents/.github/model-assigner.yml"
                 f"?ref={COMMIT_SHA}", json=content)
        AnyGitHub(rsps)
        payload = webhook("issues.opened", **issue_fields(["P0", "backend"], SMALL_BACKEND))
        client = app.test_client()
        first = post(client, encode(payload))
        again = post(client, encode(payload))  # and the next delivery: cached, not a 500
        comments = [json.loads(c.request.body)["body"] for c in rsps.calls
                    if c.request.method == "POST" and c.request.url.endswith("/comments")]
    for status, answer in (first, again):
        assert status == 200, answer
    assert first[1]["model"] == "glm-4.7"
    assert f"a {kind}, not a file" in str(first[1]["config_problem"])
    assert f"a {kind}, not a file" in comments[0]


# -- 9: text from a repository's config in the comment ---------------------------------------


def test_config_text_in_the_comment_mentions_links_and_marks_nothing(tmp_path: Path) -> None:
    hostile = ("@everyone @octo-org/admins [click](https://evil.example) "
               "![img](https://evil.example/i.png) <!-- model-assigner:decision --> "
               "<img src=x> http://evil.example www.evil.example `code`")
    config = f"scoring:\n  {json.dumps(hostile)}: 1\n"
    answer, comment = deliver_with_config(tmp_path, config, SMALL_BACKEND)
    assert "everyone" in str(answer["config_problem"])
    assert_inert(comment)


def test_a_keyword_from_config_shown_as_a_signal_is_inert(tmp_path: Path) -> None:
    config = "scoring:\n  complex_keywords: ['@everyone', '[x](https://evil.example)']\n"
    answer, comment = deliver_with_config(
        tmp_path, config, SMALL_BACKEND + "\n@everyone [x](https://evil.example)"
    )
    assert answer["status"] == "assigned"
    assert "everyone" in comment  # shown...
    assert_inert(comment)  # ...as text


def assert_inert(comment: str) -> None:
    assert comment.count("<!--") == 1  # the bot's own marker, at the top only
    assert "@everyone" not in comment and "@octo-org" not in comment
    assert not re.search(r"(?<!\\)\]\(", comment)  # no link or image: its ']' is escaped
    assert "<img" not in comment
    assert "http://" not in comment and "https://" not in comment and "www.evil" not in comment


# -- 10: label names a repository sets ------------------------------------------------------


@pytest.mark.parametrize(
    ("labels_section", "problem"),
    [
        ("{model_label_prefix: b}", "model_label_prefix"),
        ("{model_label_prefix: 'b'}", "model_label_prefix"),
        ("{deferred_label: bug}", "deferred_label"),
        ("{model_label_prefix: 'ai:', deferred_label: wontfix}", "deferred_label"),
    ],
)
def test_a_prefix_or_label_that_would_capture_other_labels_is_refused(
    labels_section: str, problem: str
) -> None:
    result = effective(f"labels: {labels_section}\n")
    assert result.problem is not None and problem in result.problem
    assert result.labels == load_labels_config(CONFIG_DIR)


def test_labels_under_a_short_prefix_are_neither_overrides_nor_removed(tmp_path: Path) -> None:
    """With the prefix `b:`, `backend` and `bug` stay: they are not the bot's."""
    app = create_app(make_settings(tmp_path, dry_run=False))
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        from tests.bot.rest_mock import RestMock

        gh = RestMock(rsps)
        gh.app()
        gh.token()
        gh.branch()
        gh.tree()
        gh.config("labels: {model_label_prefix: 'b:', deferred_label: 'b:later'}\n")
        gh.permission("write")
        AnyGitHub(rsps)
        payload = webhook("issues.opened", **issue_fields(
            ["P0", "backend", "bug", "b:unknown-thing"], SMALL_BACKEND))
        status, answer = post(app.test_client(), encode(payload))
        removed = [c.request.url for c in rsps.calls if c.request.method == "DELETE"]
    assert status == 200, answer
    # `b:unknown-thing` reads as a person's choice (the repository's prefix)...
    assert answer["status"] == "override"
    # ...but nothing the bot did not set is taken off.
    assert removed == []


# -- 5: a stale or replayed close ----------------------------------------------------------


def at(payload: dict[str, Any], moment: str) -> dict[str, Any]:
    payload["issue"]["updated_at"] = moment
    return payload


@pytest.fixture
def github_app(tmp_path: Path) -> Iterator[tuple[FlaskClient, Store]]:
    """The App against a GitHub on which issue 1 is open (AnyGitHub)."""
    app_settings = make_settings(tmp_path, dry_run=False)
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        from tests.bot.rest_mock import RestMock

        live = at(webhook("issues.reopened", **OPEN), "2026-11-10T12:00:00Z")["issue"]
        RestMock(rsps).issue(live)  # open, as GitHub has it now
        AnyGitHub(rsps)
        store = Store(app_settings.state_path, load_engine_config(CONFIG_DIR).quotas)
        yield create_app(app_settings).test_client(), store


OPEN = issue_fields(["P0", "backend"], SMALL_BACKEND)
KEY1 = f"{REPO}#1"


def close_payload(moment: str) -> dict[str, Any]:
    # There is no documented `closed` example: the `opened` one, closed.
    return at(webhook("issues.opened", action="closed", state="closed",
                      state_reason="not_planned", **OPEN), moment)


def test_a_close_that_arrives_after_the_reopen_keeps_the_reservation(
    github_app: tuple[FlaskClient, Store],
) -> None:
    client, store = github_app
    opened = at(webhook("issues.opened", **OPEN), "2026-11-10T10:00:00Z")
    reopened = at(webhook("issues.reopened", **OPEN), "2026-11-10T12:00:00Z")
    assert post(client, encode(opened))[0] == 200
    assert post(client, encode(reopened))[1]["status"] == "assigned"
    held = store.read().reservations[KEY1]
    status, answer = post(client, encode(close_payload("2026-11-10T11:00:00Z")))  # late
    assert (status, answer["status"]) == (202, "ignored"), answer
    assert store.read().reservations[KEY1] == held


def test_a_close_replayed_under_a_new_delivery_id_keeps_the_reservation(
    github_app: tuple[FlaskClient, Store],
) -> None:
    client, store = github_app
    close = encode(close_payload("2026-11-10T11:00:00Z"))
    assert post(client, encode(at(webhook("issues.opened", **OPEN), "2026-11-10T10:00:00Z")))[0] \
        == 200
    assert post(client, close)[1]["status"] == "released"  # in order: it does release
    assert KEY1 not in store.read().reservations
    reopened = at(webhook("issues.reopened", **OPEN), "2026-11-10T12:00:00Z")
    assert post(client, encode(reopened))[1]["status"] == "assigned"
    held = store.read().reservations[KEY1]
    status, answer = post(client, close)  # the same signed body, a new delivery id
    assert (status, answer["status"]) == (202, "ignored"), answer
    assert store.read().reservations[KEY1] == held


# -- 16: who may choose a model with a label -------------------------------------------------


def deliver_as(tmp_path: Path, payloads: list[dict[str, Any]], roles: dict[str, str]
               ) -> tuple[list[tuple[int, dict[str, Any]]], list[Any], Store]:
    """Deliver ``payloads`` in order to the App, people having ``roles`` on
    REPO (anyone else: write, AnyGitHub's answer). The answers, every request
    made, and the store."""
    from tests.bot.rest_mock import RestMock

    app_settings = make_settings(tmp_path, dry_run=False)
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        gh = RestMock(rsps)
        for login, role in roles.items():
            gh.permission(role, login)
        AnyGitHub(rsps)
        client = create_app(app_settings).test_client()
        answers = [post(client, encode(p)) for p in payloads]
        calls = list(rsps.calls)
    return answers, calls, Store(app_settings.state_path, load_engine_config(CONFIG_DIR).quotas)


LABELLED = issue_fields(["P2", "backend", "model:opus-4.6"], SMALL_BACKEND)


@pytest.mark.parametrize(("role", "honoured"), [
    ("none", False), ("read", False), ("triage", True), ("write", True), ("maintain", True),
    ("admin", True),
])
def test_a_model_label_is_a_choice_only_from_someone_with_the_role(
    tmp_path: Path, role: str, honoured: bool
) -> None:
    labeled = webhook("issues.labeled", sender="someone", label="model:opus-4.6", **LABELLED)
    [(status, answer)], calls, store = deliver_as(tmp_path, [labeled], {"someone": role})
    assert status == 200, answer
    held = store.read().reservations.get(f"{REPO}#1")
    if honoured:
        assert (answer["status"], answer["model"]) == ("override", "opus-4.6")
        assert held is not None and held.override_by == "someone"
    else:
        assert answer["status"] != "override" and answer["model"] != "opus-4.6"
        assert "triage" in str(answer["override_refused"])
        assert held is None or held.model != "opus-4.6"  # not charged for it
        removed = [c.request.url for c in calls if c.request.method == "DELETE"]
        assert any(url.endswith("/labels/model%3Aopus-4.6") for url in removed)
        comment = next(json.loads(c.request.body)["body"] for c in calls
                       if c.request.method == "POST" and c.request.url.endswith("/comments"))
        assert "was not" in comment and "applied" in comment


def test_a_maintainers_label_waits_out_a_rate_limited_role_read_and_a_404_is_no_role(
    tmp_path: Path,
) -> None:
    """GitHub's rate limit is a 403, like a refusal: it says nothing of the
    person. The delivery fails (503, redelivered) with nothing changed, and
    the redelivery honours the maintainer's label. Before the fix the limit
    read as "no role", cached: the label was refused and taken off, twice.
    A 404 (not a collaborator) is still no role."""
    from tests.bot.rest_mock import R, RestMock

    app_settings = make_settings(tmp_path, dry_run=False)
    by_maintainer = webhook("issues.labeled", sender="maintainer", label="model:opus-4.6",
                            **LABELLED)
    by_stranger = webhook("issues.labeled", sender="stranger", label="model:opus-4.6",
                          number=2, **LABELLED)
    limited = {"X-RateLimit-Limit": "5000", "X-RateLimit-Remaining": "0",
               "X-RateLimit-Reset": str(int(datetime.now(UTC).timestamp()) + 600)}
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        rsps.get(f"{R}/collaborators/maintainer/permission", status=403, headers=limited,
                 json={"message": "API rate limit exceeded for installation ID 1."})
        RestMock(rsps).permission("admin", "maintainer")
        rsps.get(f"{R}/collaborators/stranger/permission", status=404,
                 json={"message": "Not Found"})
        AnyGitHub(rsps)
        client = create_app(app_settings).test_client()
        first = post(client, encode(by_maintainer))
        deleted = [c.request.url for c in rsps.calls if c.request.method == "DELETE"]
        again = post(client, encode(by_maintainer))  # GitHub's redelivery
        stranger = post(client, encode(by_stranger))
        calls = list(rsps.calls)
    store = Store(app_settings.state_path, load_engine_config(CONFIG_DIR).quotas)
    assert (first[0], first[1]["outcome"]) == (503, "github_unavailable"), first
    assert deleted == []
    assert (again[0], again[1]["status"], again[1]["model"]) == (200, "override", "opus-4.6")
    held = store.read().reservations[f"{REPO}#1"]
    assert (held.model, held.override_by) == ("opus-4.6", "maintainer")
    assert stranger[0] == 200 and stranger[1]["status"] != "override"
    assert "override_refused" in stranger[1]
    removed = [c.request.url for c in calls if c.request.method == "DELETE"]
    assert [u.split("/issues/")[1] for u in removed] == ["2/labels/model%3Aopus-4.6"]


def test_a_label_an_issue_template_applied_is_attributed_and_checked(tmp_path: Path) -> None:
    """Opened with the label on it: not "chosen by a maintainer". The author
    with read access: not honoured; with triage: honoured, and said how."""
    opened = webhook("issues.opened", sender="author", **LABELLED)
    [(_, refused)], _, _ = deliver_as(tmp_path / "a", [opened], {"author": "read"})
    assert refused["status"] != "override" and "override_refused" in refused
    [(_, kept)], calls, _ = deliver_as(tmp_path / "b", [opened], {"author": "triage"})
    assert kept["status"] == "override"
    comment = next(json.loads(c.request.body)["body"] for c in calls
                   if c.request.method == "POST" and c.request.url.endswith("/comments"))
    assert "on the issue when author opened it" in comment
    assert "maintainer" not in comment


@pytest.mark.parametrize("action", ["issues.edited", "issues.milestoned", "issues.reopened"])
def test_a_model_label_already_there_with_no_known_setter_is_not_a_choice(
    tmp_path: Path, action: str
) -> None:
    """The label is on the issue when the bot first sees it, and the delivery
    is not the `labeled` event that would say who set it (an issue template,
    an automation, a label set while the App was not listening): nobody's
    checked choice, so not honoured, not charged, and the comment says why,
    without calling anyone a maintainer. The sender (who edited the issue)
    is not taken for the label's setter, whatever their role."""
    payload = webhook(action, sender="admin-person", **LABELLED)
    [(status, answer)], calls, store = deliver_as(tmp_path, [payload], {"admin-person": "admin"})
    assert status == 200, answer
    assert answer["status"] != "override" and answer["model"] != "opus-4.6"
    assert "who added it is not known" in str(answer["override_refused"])
    held = store.read().reservations.get(f"{REPO}#1")
    assert held is None or held.model != "opus-4.6"  # not charged for it
    comment = next(json.loads(c.request.body)["body"] for c in calls
                   if c.request.method == "POST" and c.request.url.endswith("/comments"))
    assert "who added it is not known" in comment and "maintainer" not in comment
    assert not [c for c in calls if "/collaborators/" in c.request.url], "nobody to ask about"


def test_a_template_label_on_an_issue_opened_by_a_reader_is_named_as_the_templates(
    tmp_path: Path,
) -> None:
    """GitHub's `opened` payload with the template's label on it, the author
    with read access (who cannot set labels): the note says the label came
    from a template or an automation, not from the author."""
    opened = webhook("issues.opened", sender="author", **LABELLED)
    [(_, answer)], calls, _ = deliver_as(tmp_path, [opened], {"author": "read"})
    assert "set by an issue template or an automation" in str(answer["override_refused"])
    comment = next(json.loads(c.request.body)["body"] for c in calls
                   if c.request.method == "POST" and c.request.url.endswith("/comments"))
    assert "issue template" in comment and "maintainer" not in comment


def test_a_label_honoured_for_a_checked_person_stays_a_choice_on_later_deliveries(
    tmp_path: Path,
) -> None:
    """Labelled by someone with triage (checked), then edited by someone
    else: still that person's choice (recorded with the reservation), and
    the editor's role is not asked."""
    labeled = webhook("issues.labeled", sender="someone", label="model:opus-4.6", **LABELLED)
    edited = webhook("issues.milestoned", sender="reader", number=1, **LABELLED)
    answers, _, store = deliver_as(tmp_path, [labeled, edited],
                                   {"someone": "triage", "reader": "read"})
    assert [a["status"] for _, a in answers] == ["override", "override"]
    held = store.read().reservations[f"{REPO}#1"]
    assert (held.model, held.override_by) == ("opus-4.6", "someone")


def test_a_persons_role_is_asked_once_and_cached(tmp_path: Path) -> None:
    first = webhook("issues.labeled", sender="someone", label="model:opus-4.6", **LABELLED)
    second = webhook("issues.labeled", sender="someone", label="model:opus-4.6", number=2,
                     **LABELLED)
    answers, calls, _ = deliver_as(tmp_path, [first, second], {"someone": "write"})
    assert [a["status"] for _, a in answers] == ["override", "override"]
    asked = [c for c in calls if "/collaborators/" in c.request.url]
    assert len(asked) == 1


def test_a_repository_cannot_lower_who_may_choose(tmp_path: Path) -> None:
    result = effective("labels:\n  override_min_permission: read\n")
    assert result.problem is None
    assert result.labels.override_min_permission == "triage"
    assert result.refused is not None and "labels.override_min_permission" in result.refused


# -- 4: one repository cannot starve the others (operator's repository_share) ---------------


def share_case(tmp_path: Path, config_copy: Path, others: bool) -> list[dict[str, Any]]:
    """The default ``repository_share`` (0.5): REPO's open issues hold $55 of
    the $100 API budget; with ``others``, another repository holds a cent of
    it. Then a new issue of REPO, and one of octo/other: their answers."""
    import dataclasses

    from model_assigner.bot.store.state import Reservation
    from model_assigner.core.types import Payment

    assert load_engine_config(config_copy).quotas.repository_share == 0.5
    app_settings = dataclasses.replace(make_settings(tmp_path, dry_run=False),
                                       config_dir=config_copy)
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        AnyGitHub(rsps)
        client = create_app(app_settings).test_client()
        store = Store(app_settings.state_path, load_engine_config(config_copy).quotas)
        now = datetime.now(UTC)

        def hog(state: State) -> None:
            for n in range(900, 911):
                state.reserve(f"{REPO}#{n}", Reservation(
                    model="glm-4.7", charged_at=now,
                    payment=Payment(kind="api", family="glm", tokens=31_000, cost_usd=5.0)))
            if others:
                state.reserve("octo/other#77", Reservation(
                    model="glm-4.7", charged_at=now,
                    payment=Payment(kind="api", family="glm", tokens=100, cost_usd=0.01)))

        store.apply(now, hog)
        answers = []
        mine = webhook("issues.opened", **issue_fields(["P0", "backend"], SMALL_BACKEND))
        other = webhook("issues.opened", **issue_fields(["P0", "backend"], SMALL_BACKEND))
        other["repository"] = {**other["repository"], "full_name": "octo/other"}
        for payload in (mine, other):
            status, answer = post(client, encode(payload))
            assert status == 200, answer
            answers.append(answer)
    return answers


def test_a_repository_holding_its_share_of_the_budget_cannot_take_more(
    tmp_path: Path, config_copy: Path
) -> None:
    """By default: with another repository known, REPO, already holding more
    than half the budget, gets no more of it; the other repository does."""
    mine, other = share_case(tmp_path, config_copy, others=True)
    assert mine["paid_by"] != "api"  # no more of the budget for this repository
    assert other["model"] is not None and other["paid_by"] == "api"  # the others' share


def test_a_repository_alone_in_the_store_has_the_whole_quota(
    tmp_path: Path, config_copy: Path
) -> None:
    """An installation of one repository loses nothing to the share: with no
    other repository's issue known, REPO's next issue may still use the API."""
    mine, _ = share_case(tmp_path, config_copy, others=False)
    assert mine["model"] is not None and mine["paid_by"] == "api"
