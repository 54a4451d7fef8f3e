"""The catch-up sweep (bot/queue/catchup.py) against an installation whose
open issue a ``plan --apply`` reserved and then died before writing."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
import responses

from model_assigner.bot.queue.catchup import CatchUp
from model_assigner.bot.settings import Settings
from model_assigner.bot.store.state import IssueRecord, Reservation, State
from model_assigner.bot.wiring import build_services
from model_assigner.core.types import Payment
from tests.bot.rest_mock import API, RestMock
from tests.bot.support import APP_ID, REPO, SECRET, app_key, webhook
from tests.helpers import CONFIG_DIR

NOW = datetime(2026, 11, 10, 12, tzinfo=UTC)
KEY = f"{REPO}#1"  # the documented payloads' issue


def a_plan_died_after_reserving(state: State) -> None:
    """What reserve_plan leaves before the issue's label is written: a
    reservation, and a record with no issue time (and no label yet)."""
    payment = Payment(kind="api", family="x", tokens=1000, cost_usd=0.01,
                      remaining_budget_usd=99.99)
    state.reserve(KEY, Reservation(model="glm-4.7", payment=payment, charged_at=NOW))
    state.records[KEY] = IssueRecord()


@pytest.mark.parametrize(("labels", "enqueued"), [([], 1), (["model:glm-4.7"], 0)])
def test_the_sweep_decides_an_issue_a_dead_plan_reserved_but_never_labelled(
    tmp_path: Path, labels: list[str], enqueued: int
) -> None:
    """No model label on GitHub: the record with no issue time is no decision,
    so the sweep enqueues the issue (its delivery replaces the reservation).
    With the label written, the issue is decided and left alone."""
    settings = Settings(app_id=APP_ID, private_key=app_key().private_pem, webhook_secret=SECRET,
                        api_url="https://api.github.com", state_path=tmp_path / "state.json",
                        config_dir=CONFIG_DIR, bot_login=None)
    services = build_services(settings, clock=lambda: NOW)
    services.store.apply(NOW, a_plan_died_after_reserving)
    issue = webhook("issues.opened", labels=labels)["issue"]
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        gh = RestMock(rsps)
        gh.app()
        gh.token()
        gh.installation_with_issues([issue])
        assert CatchUp(services).sweep_issues() == enqueued
    assert services.queue.pending_keys() == ({KEY} if enqueued else set())


def test_the_sweep_reads_open_issues_a_page_at_a_time_and_no_issue_again(
    tmp_path: Path,
) -> None:
    """One request per 100 open issues, following GitHub's Link header, and
    none per issue: each listed issue is enqueued as listed (PyGithub's
    ``Issue.raw_data`` would GET each one again, every sweep)."""
    settings = Settings(app_id=APP_ID, private_key=app_key().private_pem, webhook_secret=SECRET,
                        api_url="https://api.github.com", state_path=tmp_path / "state.json",
                        config_dir=CONFIG_DIR, bot_login=None)
    services = build_services(settings, clock=lambda: NOW)
    template = webhook("issues.opened")["issue"]
    issues = [{**template, "number": n, "title": f"Issue {n}", "labels": []}
              for n in range(1, 151)]
    # As GitHub writes it: no port (PyGithub refuses a port its base URL lacks).
    second = "https://api.github.com/repositories/1296269/issues?state=open&per_page=100&page=2"
    with responses.RequestsMock(assert_all_requests_are_fired=True) as rsps:
        gh = RestMock(rsps)
        gh.token()
        gh.installation_with_issues([])
        rsps.replace(responses.GET, f"{API}/repos/{REPO}/issues", json=issues[:100],
                     headers={"Link": f'<{second}>; rel="next", <{second}>; rel="last"'})
        rsps.get(f"{API}/repositories/1296269/issues", json=issues[100:], match=[
            responses.matchers.query_param_matcher({"state": "open", "per_page": "100",
                                                    "page": "2"})])
        assert CatchUp(services).sweep_issues() == 150
        reads = [(method, url.split("?")[0]) for method, url in gh.summary()
                 if method == "GET"]
    assert reads == [
        ("GET", "/app/installations"),
        ("GET", "/installation/repositories"),
        ("GET", f"/repos/{REPO}/issues"),
        ("GET", "/repositories/1296269/issues"),
    ]
    assert services.queue.pending_keys() == {f"{REPO}#{n}" for n in range(1, 151)}
