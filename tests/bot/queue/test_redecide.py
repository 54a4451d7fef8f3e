"""The deferred issues the queue's catch-up decides again (bot/queue/redecide.py)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from model_assigner.bot.handling.handler import Handler
from model_assigner.bot.queue.redecide import due_issue_keys
from model_assigner.bot.settings import Settings
from model_assigner.bot.store.state import State
from model_assigner.bot.wiring import build_handler
from model_assigner.core.types import Observation
from tests.bot.support import SECRET
from tests.helpers import CONFIG_DIR, seed_strategy_config

NOW = datetime(2026, 11, 10, 12, tzinfo=UTC)
NEAR_RESET = datetime(2026, 12, 1, tzinfo=UTC) - timedelta(hours=1)
KEY = "Codertocat/Hello-World#1"  # the documented payloads' issue


def handler_at(
    tmp_path: Path, clock: list[datetime], config_dir: Path = CONFIG_DIR
) -> Handler:
    settings = Settings(app_id=None, private_key=None, webhook_secret=SECRET,
                        api_url="https://api.github.com", state_path=tmp_path / "state.json",
                        config_dir=config_dir, bot_login=None)
    handler, _ = build_handler(settings, clock=lambda: clock[0])
    return handler


def nearly_spent(state: State) -> None:
    """40 issues worth 90 seen this month, the budget nearly gone, and one
    low-value issue deferred."""
    state.subscriptions["claude"].tokens_used_month = 4_990_000
    state.api_budget.spent_usd = 99.95
    for n in range(40):
        state.seen[f"other/repo#{n}"] = Observation(
            value=90, domain="backend", input_tokens=7_500, output_tokens=1_250,
            seen_at=NOW - timedelta(days=5, hours=n))
    waiting = Observation(value=5.5, domain="backend", input_tokens=7_500, output_tokens=1_250,
                          seen_at=NOW - timedelta(days=1))
    state.seen[KEY] = waiting
    state.deferred[KEY] = waiting


def test_a_deferred_issue_is_due_once_its_price_has_fallen(tmp_path: Path) -> None:
    clock = [NOW]
    handler = handler_at(tmp_path, clock)
    assert due_issue_keys(handler) == set()  # nothing deferred yet
    handler.store.apply(NOW, nearly_spent)
    assert due_issue_keys(handler) == set()  # mid-month: the price is too high
    clock[0] = NEAR_RESET
    assert due_issue_keys(handler) == {KEY}  # the hours before the reset: free


def test_only_the_online_strategy_re_decides(tmp_path: Path) -> None:
    clock = [NEAR_RESET]
    handler = handler_at(tmp_path, clock, seed_strategy_config())
    handler.store.apply(NOW, nearly_spent)
    assert due_issue_keys(handler) == set()


def test_the_catch_up_enqueues_a_due_issue_as_an_edit(tmp_path: Path) -> None:
    """Through the queue's periodic catch-up: the deferred issue, open on
    GitHub with its `model:deferred` label, is enqueued (as an `edited`
    delivery of its current state) once its price has fallen."""
    import responses

    from model_assigner.bot.queue.catchup import CatchUp
    from model_assigner.bot.wiring import build_services
    from tests.bot.rest_mock import RestMock
    from tests.bot.support import (
        APP_ID,
        INSTALLATION,
        app_key,
        webhook,
    )

    clock = [NEAR_RESET]
    settings = Settings(app_id=APP_ID, private_key=app_key().private_pem, webhook_secret=SECRET,
                        api_url="https://api.github.com", state_path=tmp_path / "state.json",
                        config_dir=CONFIG_DIR, bot_login=None)
    services = build_services(settings, clock=lambda: clock[0])
    services.store.apply(NOW, nearly_spent)
    issue = webhook("issues.opened", labels=["model:deferred"])["issue"]
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        gh = RestMock(rsps)
        gh.app()
        gh.token()
        gh.installation_with_issues([issue])
        gh.issue(issue)
        assert CatchUp(services).sweep_issues() == 1
    assert services.queue.pending_keys() == {KEY}
    (job,) = services.queue.jobs()
    assert job.key == KEY and job.installation == INSTALLATION


def test_the_sweep_reads_every_page_of_the_installations_repositories(tmp_path: Path) -> None:
    """An installation with more repositories than one page holds: the open
    issue in a repository on the second page is found and enqueued."""
    import responses
    from responses import matchers

    from model_assigner.bot.queue.catchup import CatchUp
    from model_assigner.bot.wiring import build_services
    from tests.bot.rest_mock import API, RestMock
    from tests.bot.support import APP_ID, INSTALLATION, REPO, app_key, rest_example, webhook

    settings = Settings(app_id=APP_ID, private_key=app_key().private_pem, webhook_secret=SECRET,
                        api_url="https://api.github.com", state_path=tmp_path / "state.json",
                        config_dir=CONFIG_DIR, bot_login=None)
    services = build_services(settings, clock=lambda: NOW)
    issue = webhook("issues.opened")["issue"]
    quiet = "octo/quiet"
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        gh = RestMock(rsps)
        gh.app()
        gh.token()
        installations = rest_example("apps/list-installations")
        installations[0].update(id=INSTALLATION)
        rsps.get(f"{API}/app/installations", json=installations[:1])

        def listed(full_name: str) -> dict[str, object]:
            repo = rest_example("repos/get")
            repo.update(full_name=full_name, default_branch="main",
                        url=f"{API}/repos/{full_name}")
            return repo

        first = rest_example("apps/list-repos-accessible-to-installation")
        first.update(total_count=2, repositories=[listed(quiet)])
        second = {**first, "repositories": [listed(REPO)]}
        following = "https://api.github.com/installation/repositories?per_page=100&page=2"
        rsps.get(f"{API}/installation/repositories", json=first,
                 match=[matchers.query_param_matcher({"per_page": "100"})],
                 headers={"Link": f'<{following}>; rel="next", <{following}>; rel="last"'})
        rsps.get(f"{API}/installation/repositories", json=second,
                 match=[matchers.query_param_matcher({"per_page": "100", "page": "2"})])
        for name, issues in ((quiet, []), (REPO, [issue])):
            rsps.get(f"{API}/repos/{name}", json=listed(name))
            rsps.get(f"{API}/repos/{name}/issues", json=issues)
        gh.issue(issue)
        assert CatchUp(services).sweep_issues() == 1
    assert services.queue.pending_keys() == {KEY}
