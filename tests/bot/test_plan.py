"""`plan OWNER/REPO`: every open issue of a repository planned as one batch,
against GitHub's documented issue-list answer (through `responses`)."""

from __future__ import annotations

import copy
import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import responses
from responses import matchers

from model_assigner.bot.cli.plan import plan_rows
from model_assigner.bot.github.api import GitHubApp, InstallationGateway
from model_assigner.bot.handling.handler import Handler
from model_assigner.bot.plan import RepoPlan, build_plan, reserve_plan
from model_assigner.bot.plan_queue import PLAN_EVENT, enqueue_plan, plan_write_task
from model_assigner.bot.queue.db import QueueDb, QueueDbError
from model_assigner.bot.queue.jobs import SqliteJobQueue
from model_assigner.bot.queue.ratelimit import RateLimiter
from model_assigner.bot.queue.worker import Worker
from model_assigner.bot.wiring import build_handler
from model_assigner.core.types import Payment
from tests.bot.rest_mock import API, BRANCH, R, RestMock
from tests.bot.support import APP_ID, INSTALLATION, REPO, SECRET, app_key, rest_example
from tests.helpers import seed_strategy_config, store_files, store_text

NOW = datetime(2026, 11, 10, 12, 0, tzinfo=UTC)


def listed_issue(
    number: int, labels: list[str], body: str, pull_request: bool = False
) -> dict[str, Any]:
    item: dict[str, Any] = copy.deepcopy(rest_example("issues/list-for-repo")[0])
    base = f"https://api.github.com/repos/{REPO}"
    item.update(
        number=number,
        url=f"{base}/issues/{number}",
        repository_url=base,
        title=f"issue {number}",
        body=body,
        state="open",
        milestone=None,
        labels=[{**item["labels"][0], "name": name} for name in labels],
    )
    if not pull_request:
        item.pop("pull_request", None)
    return item


ISSUES = [
    listed_issue(1, ["P0", "security", "hotfix"], "Estimated files: 8\nEstimated LOC: 800"),
    listed_issue(2, ["P0", "backend"], "Estimated files: 3\nEstimated LOC: 150\nDepends on #1"),
    listed_issue(3, ["P4", "docs"], "Typo"),
    listed_issue(4, ["P2", "model:opus-4.6"], "Someone chose opus by hand"),
    listed_issue(5, ["P0"], "a pull request, not an issue", pull_request=True),
]


@pytest.fixture
def rsps() -> Iterator[responses.RequestsMock]:
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        yield mock


@pytest.fixture
def parts(tmp_path: Path, rsps: responses.RequestsMock) -> tuple[Handler, InstallationGateway]:
    from model_assigner.bot.settings import Settings

    settings = Settings(
        app_id=APP_ID, private_key=app_key().private_pem, webhook_secret=SECRET,
        api_url="https://api.github.com", state_path=tmp_path / "state.json",
        config_dir=seed_strategy_config(), bot_login=None,
    )
    handler, _ = build_handler(settings, clock=lambda: NOW)
    gh = RestMock(rsps)
    gh.token()
    gh.app()  # GET /app: whose comments are ours
    gh.workspace()
    repo = rest_example("repos/get")
    repo.update(full_name=REPO, default_branch=BRANCH, url=f"https://api.github.com/repos/{REPO}")
    rsps.get(f"{R}", json=repo)
    rsps.get(
        f"{R}/issues", json=ISSUES,
        match=[matchers.query_param_matcher({"state": "open"})],
    )
    gateway = GitHubApp(settings).installation(INSTALLATION)
    return handler, gateway


def apply_plan(handler: Handler, gateway: InstallationGateway,
               queue: SqliteJobQueue | None = None) -> tuple[RepoPlan, dict[str, int]]:
    """``plan --apply``'s path: reserve, queue each issue, then a queue
    worker writes them back; returns the plan and each issue's outcome status
    (the entries' recorded outcomes)."""
    repo_plan, left = reserve_plan(handler, gateway, gateway.github, REPO, NOW)
    db = QueueDb(handler.store.path.with_name("queue.sqlite3"))
    queue = queue or SqliteJobQueue(db)
    queued = enqueue_plan(handler, queue, repo_plan, left, INSTALLATION)
    worker = Worker(handler, queue, RateLimiter(db), max_attempts=1,
                    tasks={PLAN_EVENT: plan_write_task(handler)})
    worker.drain()
    outcomes = {}
    for key, delivery in queued.items():
        outcome = queue.outcome(delivery)
        outcomes[key] = -1 if outcome is None else outcome[0]
    return repo_plan, outcomes


def writes(rsps: responses.RequestsMock) -> list[tuple[str, str]]:
    return [
        (c.request.method or "", (c.request.url or "").removeprefix(API))
        for c in rsps.calls
        if c.request.method in ("POST", "PATCH", "PUT", "DELETE")
        and "access_tokens" not in (c.request.url or "")
    ]


def test_plan_reads_open_issues_and_changes_nothing(
    parts: tuple[Handler, InstallationGateway], rsps: responses.RequestsMock
) -> None:
    handler, gateway = parts
    before = store_files(handler.store.path)
    repo_plan = build_plan(handler, gateway, gateway.github, REPO, NOW)
    rows = {row["issue"]: row for row in plan_rows(repo_plan)}
    assert set(rows) == {f"{REPO}#{n}" for n in (1, 2, 3, 4)}  # the pull request is not planned
    assert rows[f"{REPO}#1"]["model"] == "opus-4.6"  # 100 (clamped): the critical band
    assert rows[f"{REPO}#1"]["paid_by"] == "subscription:claude"
    assert rows[f"{REPO}#3"]["model"] is None  # low value: deferred
    # A model label nobody can be said to have set (no `labeled` event, no
    # record of a checked person): not a person's choice, not replaced either.
    assert rows[f"{REPO}#4"]["paid_by"] == "left alone"
    assert "setter is not known" in rows[f"{REPO}#4"]["reason"]
    # Issue 2 depends on issue 1, so issue 1 blocks: its time bonus is the blocking one.
    decision = next(d for d in repo_plan.plan.decisions if d.task_id == f"{REPO}#1")
    assert decision.breakdown.time_bonus == 12
    assert writes(rsps) == []
    after = store_files(handler.store.path)
    assert after == before
    # Only list reads: no issue was fetched one by one.
    assert not [c for c in rsps.calls if "/issues/" in (c.request.url or "")
                and c.request.method == "GET"]


def test_plan_keeps_a_label_honoured_before_for_a_checked_person(
    parts: tuple[Handler, InstallationGateway], rsps: responses.RequestsMock
) -> None:
    """A model label the bot honoured when a `labeled` delivery named its
    setter (checked then, recorded in the reservation) is still a choice."""
    from model_assigner.bot.store import Reservation

    handler, gateway = parts
    payment = Payment(kind="subscription", family="claude", tokens=1000, cost_usd=0.0)
    handler.store.apply(NOW, lambda state: state.reserve(f"{REPO}#4", Reservation(
        model="opus-4.6", payment=payment, charged_at=NOW, override_by="monalisa")))
    rows = {row["issue"]: row for row in plan_rows(build_plan(handler, gateway, gateway.github,
                                                              REPO, NOW))}
    assert rows[f"{REPO}#4"]["paid_by"] == "override (kept)"
    assert writes(rsps) == []


def expect_writes(gh: RestMock, planned: dict[int, str]) -> None:
    for number, label in planned.items():
        gh.comments(number, [])
        gh.create_comment(number, 600 + number)
        color = "d4c5f9" if label == "model:deferred" else "6f42c1"
        description = ("model-assigner: deferred" if label == "model:deferred"
                       else "model-assigner: model for this issue")
        gh.create_label(label, color, description)
        gh.add_labels(number, [label])


def test_apply_reserves_in_one_update_and_writes_like_a_webhook(
    parts: tuple[Handler, InstallationGateway], rsps: responses.RequestsMock
) -> None:
    handler, gateway = parts
    gh = RestMock(rsps)
    planned = {1: "model:opus-4.6", 2: "model:glm-4.7", 3: "model:deferred"}
    expect_writes(gh, planned)
    _, outcomes = apply_plan(handler, gateway)
    assert set(outcomes.values()) == {200}
    state = handler.store.read()
    assert set(state.reservations) == {f"{REPO}#1", f"{REPO}#2"}
    assert state.reservations[f"{REPO}#1"].model == "opus-4.6"
    assert state.reservations[f"{REPO}#2"].payment.kind == "api"
    claude = state.subscriptions["claude"]
    assert claude.tokens_used_month == state.reservations[f"{REPO}#1"].tokens
    for number, label in planned.items():
        assert ("POST", f"/repos/{REPO}/issues/{number}/comments") in writes(rsps)
        assert state.records[f"{REPO}#{number}"].label == label
        # What the plan read may be minutes old: the next delivery reads GitHub.
        assert state.records[f"{REPO}#{number}"].issue_updated_at is None
    # The person's label on issue 4 is left alone.
    assert not [w for w in writes(rsps) if "/issues/4/" in w[1]]

    # Re-planning replaces the reservations: nothing is charged twice.
    spent = state.api_budget.spent_usd
    gh.rsps.calls.reset()
    _, outcomes = apply_plan(handler, gateway)
    assert set(outcomes.values()) == {200}
    again = handler.store.read()
    assert again.subscriptions["claude"].tokens_used_month == claude.tokens_used_month
    assert again.api_budget.spent_usd == pytest.approx(spent)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["plan", "not-a-repo"], "expected OWNER/REPO"),
        (["plan", "octo/repo"], "plan reads the repository through the App"),
        (["plan", "octo/repo", "--strategy", "nope"], "invalid choice"),
    ],
)
def test_plan_cli_bad_input_is_one_line(
    argv: list[str], message: str, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from model_assigner.bot.cli import main

    for name in ("GITHUB_APP_ID", "GITHUB_PRIVATE_KEY", "GITHUB_PRIVATE_KEY_PATH"):
        monkeypatch.delenv(name, raising=False)
    try:
        status = main(argv)
    except SystemExit as exit_:  # argparse's own usage errors
        status = int(exit_.code or 0)
    assert status == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


# -- the command itself, and what may happen between reserving and writing -----


def cli_env(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, rsps: responses.RequestsMock | None = None
) -> Path:
    """The App's settings in the environment, as `plan` reads them; with
    ``rsps``, GitHub's answer to the installation look-up too."""
    if rsps is not None:
        rsps.get(f"{R}/installation", json=rest_example("apps/get-repo-installation"))
    state = tmp_path / "state.json"
    for name, value in {
        "GITHUB_APP_ID": str(APP_ID),
        "GITHUB_PRIVATE_KEY": app_key().private_pem,
        "GITHUB_WEBHOOK_SECRET": SECRET,
        "GITHUB_API_URL": "https://api.github.com",
        "MODEL_ASSIGNER_STATE": str(state),
        "MODEL_ASSIGNER_CONFIG": str(seed_strategy_config()),
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("GITHUB_PRIVATE_KEY_PATH", raising=False)
    return state


def two_pages(rsps: responses.RequestsMock) -> None:
    """The open issues on two pages, linked as GitHub links them (no port)."""
    page2 = f"https://api.github.com/repos/{REPO}/issues?state=open&page=2"
    rsps.replace(
        responses.GET, f"{R}/issues", json=ISSUES[:2],
        headers={"Link": f'<{page2}>; rel="next", <{page2}>; rel="last"'},
        match=[matchers.query_param_matcher({"state": "open"})],
    )
    rsps.get(f"{R}/issues", json=ISSUES[2:],
             match=[matchers.query_param_matcher({"state": "open", "page": "2"})])


def test_plan_command_prints_the_table_and_changes_nothing(
    parts: tuple[Handler, InstallationGateway], rsps: responses.RequestsMock,
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    from model_assigner.bot.cli import main

    state = cli_env(monkeypatch, tmp_path / "cli", rsps)
    two_pages(rsps)
    assert main(["plan", REPO, "--strategy", "optimal"]) == 0
    out = capsys.readouterr().out
    lines = {line.split()[0]: line.split() for line in out.splitlines() if "#" in line}
    assert set(lines) == {f"{REPO}#{n}" for n in (1, 2, 3, 4)}  # both pages, no pull request
    assert lines[f"{REPO}#1"][1:3] == ["100.0", "opus-4.6"]
    assert lines[f"{REPO}#1"][-1] == "subscription:claude"
    assert float(lines[f"{REPO}#3"][1]) < 40  # low value: optimal gives it the budget tier
    assert lines[f"{REPO}#4"][-2:] == ["left", "alone"]
    assert f"{REPO}: 4 open issues, strategy optimal" in out
    assert "LP bound" in out and "gap" in out
    assert writes(rsps) == [] and not state.exists()


def test_plan_apply_command_queues_each_issue_and_reports_until_decided(
    parts: tuple[Handler, InstallationGateway], rsps: responses.RequestsMock,
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    """Reserved in one update, then each issue an entry of its job in the
    queue (as a webhook delivery's), written by queue workers (here the
    command's own: no server runs) through the handler's write-back; the
    command reports progress until every issue is decided."""
    from model_assigner.bot.cli import main
    from model_assigner.bot.queue.db import QueueDb
    from model_assigner.bot.queue.jobs import SqliteJobQueue
    from model_assigner.bot.store.codec import parse_state

    state_path = cli_env(monkeypatch, tmp_path / "cli", rsps)
    monkeypatch.setenv("MODEL_ASSIGNER_WRITE_INTERVAL_SECONDS", "0")
    gh = RestMock(rsps)
    expect_writes(gh, {1: "model:opus-4.6", 2: "model:glm-4.7", 3: "model:deferred"})
    status = main(["plan", REPO, "--apply"])
    captured = capsys.readouterr()
    assert status == 0, captured.err
    assert "plan --apply: 3 queued: " in captured.err
    assert "plan --apply: done: 3 of 3 decided" in captured.err
    assert "Traceback" not in captured.err
    assert SqliteJobQueue(QueueDb(state_path.with_name("queue.sqlite3"))).jobs() == []
    state = parse_state(store_text(state_path), str(state_path))
    assert {k: r.label for k, r in state.records.items()} == {
        f"{REPO}#1": "model:opus-4.6", f"{REPO}#2": "model:glm-4.7",
        f"{REPO}#3": "model:deferred",
    }
    assert set(state.reservations) == {f"{REPO}#1", f"{REPO}#2"}
    assert state.dependencies == {f"{REPO}#2": [f"{REPO}#1"]}


def test_plan_apply_no_wait_leaves_the_issues_to_the_servers_workers(
    parts: tuple[Handler, InstallationGateway], rsps: responses.RequestsMock,
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    from model_assigner.bot.cli import main
    from model_assigner.bot.queue.db import QueueDb
    from model_assigner.bot.queue.jobs import SqliteJobQueue
    from model_assigner.bot.store.codec import parse_state

    state_path = cli_env(monkeypatch, tmp_path / "cli", rsps)
    status = main(["plan", REPO, "--apply", "--no-wait"])
    captured = capsys.readouterr()
    assert status == 0, captured.err
    assert "3 queued for the server's workers" in captured.err
    jobs = SqliteJobQueue(QueueDb(state_path.with_name("queue.sqlite3"))).jobs()
    assert sorted((j.key, j.state, j.installation) for j in jobs) == [
        (f"{REPO}#{n}", "waiting", INSTALLATION) for n in (1, 2, 3)]
    assert writes(rsps) == []  # nothing written by the command itself
    state = parse_state(store_text(state_path), str(state_path))
    assert set(state.reservations) == {f"{REPO}#1", f"{REPO}#2"}  # reserved at once


def test_plan_apply_reports_a_dead_letter_and_fails(
    parts: tuple[Handler, InstallationGateway], rsps: responses.RequestsMock,
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    """GitHub fails issue 2's comment every time: its job retries, then is a
    dead letter; the others are written; the command says so and exits 2."""
    from model_assigner.bot.cli import main
    from model_assigner.bot.store.codec import parse_state

    state_path = cli_env(monkeypatch, tmp_path / "cli", rsps)
    monkeypatch.setenv("MODEL_ASSIGNER_WRITE_INTERVAL_SECONDS", "0")
    monkeypatch.setenv("MODEL_ASSIGNER_RETRY_BASE_SECONDS", "0.1")
    monkeypatch.setenv("MODEL_ASSIGNER_MAX_ATTEMPTS", "2")
    gh = RestMock(rsps)
    expect_writes(gh, {1: "model:opus-4.6", 3: "model:deferred"})
    gh.comments(2, [])
    gh.create_comment(2, status=500)
    status = main(["plan", REPO, "--apply"])
    captured = capsys.readouterr()
    assert status == 2
    assert "done: 2 of 3 decided" in captured.err
    assert "1 issue(s) are dead letters" in captured.err and "Traceback" not in captured.err
    state = parse_state(store_text(state_path), str(state_path))
    assert state.records[f"{REPO}#1"].label == "model:opus-4.6"
    assert state.records[f"{REPO}#3"].label == "model:deferred"
    assert f"{REPO}#2" in state.reservations  # kept, as a retry from the queue needs it


def a_delivery_decides_issue_3(handler: Handler, model: str) -> Any:
    """What a webhook delivery leaves in the store once it has decided issue
    3: a $0.01 API reservation for ``model`` and its issue record."""
    from model_assigner.bot.store.state import IssueRecord, Reservation

    record = IssueRecord(id=903, label=f"model:{model}", issue_updated_at="2026-11-10T12:00:05Z")

    def decided(state: Any) -> None:
        payment = Payment(kind="api", family="x", tokens=1000, cost_usd=0.01,
                          remaining_budget_usd=99.99)
        state.reserve(f"{REPO}#3", Reservation(model=model, payment=payment, charged_at=NOW))
        state.records[f"{REPO}#3"] = record

    handler.store.apply(NOW, decided)
    return record


def test_apply_leaves_an_issue_a_delivery_re_decided_meanwhile(
    parts: tuple[Handler, InstallationGateway], rsps: responses.RequestsMock
) -> None:
    """A webhook delivery re-decides issue 3 while the plan writes issue 1:
    the plan does not write issue 3's label and comment over the delivery's."""
    handler, gateway = parts
    gh = RestMock(rsps)
    expect_writes(gh, {1: "model:opus-4.6", 2: "model:glm-4.7"})
    delivered = []

    def a_delivery_meanwhile(request: Any) -> tuple[int, dict[str, str], str]:
        delivered.append(a_delivery_decides_issue_3(handler, "qwen2.5-coder"))
        return 200, {}, "[]"

    rsps.remove(responses.GET, f"{R}/issues/1/comments")
    rsps.add_callback(responses.GET, f"{R}/issues/1/comments", callback=a_delivery_meanwhile)
    _, outcomes = apply_plan(handler, gateway)
    assert set(outcomes.values()) == {200}
    assert not [w for w in writes(rsps) if "/issues/3/" in w[1]]
    state = handler.store.read()
    assert state.records[f"{REPO}#3"] == delivered[0]
    assert state.reservations[f"{REPO}#3"].model == "qwen2.5-coder"
    assert state.records[f"{REPO}#1"].label == "model:opus-4.6"


def test_apply_leaves_an_issue_a_delivery_decided_while_github_was_read(
    parts: tuple[Handler, InstallationGateway], rsps: responses.RequestsMock
) -> None:
    """A delivery for issue 3 finishes after the plan has read the issues and
    before it reserves: what the plan read of issue 3 is older than what the
    delivery decided from, so the plan leaves issue 3 alone."""
    handler, gateway = parts
    gh = RestMock(rsps)
    expect_writes(gh, {1: "model:opus-4.6", 2: "model:glm-4.7"})
    delivered = []

    def repository_then_a_delivery(request: Any) -> tuple[int, dict[str, str], str]:
        delivered.append(a_delivery_decides_issue_3(handler, "glm-4.7"))
        repo = rest_example("repos/get")
        repo.update(full_name=REPO, default_branch=BRANCH)
        return 200, {}, json.dumps(repo)

    rsps.remove(responses.GET, R)
    rsps.add_callback(responses.GET, R, callback=repository_then_a_delivery)
    repo_plan, outcomes = apply_plan(handler, gateway)
    assert set(outcomes.values()) == {200} and repo_plan.busy == [f"{REPO}#3"]
    assert f"{REPO}#3" not in {d.task_id for d in repo_plan.plan.decisions}
    assert not [w for w in writes(rsps) if "/issues/3/" in w[1]]
    state = handler.store.read()
    assert state.records[f"{REPO}#3"] == delivered[0]
    assert state.reservations[f"{REPO}#3"].payment.cost_usd == 0.01
    assert state.api_budget.spent_usd == pytest.approx(
        sum(r.payment.cost_usd for r in state.reservations.values()
            if r.payment.kind == "api")
    )
    rows = {row["issue"]: row for row in plan_rows(repo_plan)}
    assert rows[f"{REPO}#3"]["paid_by"] == "left alone"


def test_apply_leaves_an_issue_a_delivery_is_handling(
    parts: tuple[Handler, InstallationGateway], rsps: responses.RequestsMock
) -> None:
    """A delivery holds issue 2's lock (it may have reserved and be writing to
    GitHub): the plan neither releases nor replaces its reservation, and
    writes nothing to issue 2; the others are planned as usual."""
    from model_assigner.bot.locks import issue_lock, issue_lock_path

    handler, gateway = parts
    gh = RestMock(rsps)
    expect_writes(gh, {1: "model:opus-4.6", 3: "model:deferred"})
    busy_stripe = issue_lock_path(handler.lock_dir, f"{REPO}#2")
    assert all(issue_lock_path(handler.lock_dir, f"{REPO}#{n}") != busy_stripe for n in (1, 3))
    held, done = threading.Event(), threading.Event()

    def a_delivery() -> None:
        with issue_lock(handler.lock_dir, f"{REPO}#2"):
            held.set()
            done.wait(3.0)  # a plan that waited for the lock would get it after 3 s

    delivery = threading.Thread(target=a_delivery)
    delivery.start()
    held.wait(5.0)
    try:
        repo_plan, outcomes = apply_plan(handler, gateway)
    finally:
        done.set()
        delivery.join()
    assert set(outcomes.values()) == {200} and repo_plan.busy == [f"{REPO}#2"]
    assert not [w for w in writes(rsps) if "/issues/2/" in w[1]]
    state = handler.store.read()
    assert f"{REPO}#2" not in state.reservations and f"{REPO}#2" not in state.records
    assert state.records[f"{REPO}#1"].label == "model:opus-4.6"


def test_plan_against_a_github_that_does_not_answer_is_one_line(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Nothing listens on 127.0.0.1:9 here: a refused connection, not an HTTP
    error, and still one line, exit 2."""
    from model_assigner.bot.cli import main

    cli_env(monkeypatch, tmp_path)
    monkeypatch.setenv("GITHUB_API_URL", "http://127.0.0.1:9")
    assert main(["plan", REPO]) == 2
    err = capsys.readouterr().err
    assert err.startswith("model-assigner: GitHub unavailable: http://127.0.0.1:9 did not answer")
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_re_planning_after_a_usage_report_reserves_nothing_more(
    parts: tuple[Handler, InstallationGateway], rsps: responses.RequestsMock
) -> None:
    from model_assigner.bot.usage_store import record_report
    from model_assigner.core.usage import TokenUsage, UsageReport

    handler, gateway = parts
    gh = RestMock(rsps)
    expect_writes(gh, {1: "model:opus-4.6", 2: "model:glm-4.7", 3: "model:deferred"})
    apply_plan(handler, gateway)
    with handler.store.transaction(NOW) as state:
        record_report(state, f"{REPO}#1", UsageReport(run_id="r1", lines=[
            TokenUsage(input_tokens=7_000)]), handler.engine.models, NOW)
    assert handler.store.read().subscriptions["claude"].tokens_used_month == 7_000
    gh.edit_comment(601)
    _, outcomes = apply_plan(handler, gateway)
    assert set(outcomes.values()) == {200}
    state = handler.store.read()
    assert state.subscriptions["claude"].tokens_used_month == 7_000
    edited = [c for c in rsps.calls if c.request.method == "PATCH"]
    assert edited and "used 7,000" in json.loads(edited[-1].request.body or "{}")["body"]


def test_plan_due_re_decides_only_the_deferred_issues_whose_time_has_come(
    parts: tuple[Handler, InstallationGateway], rsps: responses.RequestsMock
) -> None:
    """The online strategy deferred issue 3. Mid-month, with the quota nearly
    gone and 40 issues worth 90 seen, its price is too high: nothing is due.
    Just before the reset the prices are zero: issue 3, and only it, is
    decided again (the others keep what they hold)."""
    from datetime import timedelta

    from model_assigner.core.types import Observation

    handler, gateway = parts

    def prepare(state: Any) -> None:
        state.subscriptions["claude"].tokens_used_month = 4_990_000
        state.api_budget.spent_usd = 99.95
        for n in range(40):
            state.seen[f"other/repo#{n}"] = Observation(
                value=90, domain="backend", input_tokens=7_500, output_tokens=1_250,
                seen_at=NOW - timedelta(days=5, hours=n))
        waiting = Observation(value=5.5, domain="backend", input_tokens=7_500,
                              output_tokens=1_250, seen_at=NOW - timedelta(days=1))
        state.seen[f"{REPO}#3"] = waiting
        state.deferred[f"{REPO}#3"] = waiting

    handler.store.apply(NOW, prepare)
    mid = build_plan(handler, gateway, gateway.github, REPO, NOW, "online", due_only=True)
    assert [t.id for t in mid.tasks] == []

    near = datetime(2026, 12, 1, tzinfo=UTC) - timedelta(hours=1)
    late = build_plan(handler, gateway, gateway.github, REPO, near, "online", due_only=True)
    assert [t.id for t in late.tasks] == [f"{REPO}#3"]
    (decision,) = late.plan.decisions
    assert decision.model is not None and decision.strategy == "online"
    assert writes(rsps) == []


# -- offline, and the store and config named on the command line ---------------


def test_plan_offline_from_a_saved_issue_list_needs_no_app(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`plan --issues FILE`: GitHub's list answer saved to a file, planned with
    no credentials and no network (responses refuses any request here), and
    nothing written; --state and --config name the store and config."""
    from model_assigner.bot.cli import main

    for name in ("GITHUB_APP_ID", "GITHUB_PRIVATE_KEY", "GITHUB_PRIVATE_KEY_PATH",
                 "MODEL_ASSIGNER_STATE", "MODEL_ASSIGNER_CONFIG"):
        monkeypatch.delenv(name, raising=False)
    saved = tmp_path / "issues.json"
    saved.write_text(json.dumps(ISSUES))
    state = tmp_path / "elsewhere" / "state.json"
    with responses.RequestsMock():  # any HTTP request fails the test
        status = main(["plan", REPO, "--issues", str(saved), "--strategy", "optimal",
                       "--state", str(state), "--config", str(seed_strategy_config()), "--json"])
    assert status == 0
    rows = {row["issue"]: row for row in json.loads(capsys.readouterr().out)}
    assert set(rows) == {f"{REPO}#{n}" for n in (1, 2, 3, 4)}  # the pull request dropped
    assert rows[f"{REPO}#1"]["model"] == "opus-4.6"
    assert not state.exists()


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["plan", REPO, "--issues", "missing.json"], "missing.json: cannot read"),
        (["plan", REPO, "--issues", "issues.json", "--apply"], "cannot be used with --apply"),
        (["plan", REPO, "--issues", "issues.json", "--config", "nowhere"], "nowhere"),
    ],
)
def test_plan_offline_bad_input_is_one_line(
    argv: list[str], message: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from model_assigner.bot.cli import main

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MODEL_ASSIGNER_STATE", str(tmp_path / "state.json"))
    (tmp_path / "issues.json").write_text(json.dumps(ISSUES))
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err and err.count("\n") == 1


def test_plan_state_option_names_the_store_it_writes(
    parts: tuple[Handler, InstallationGateway], rsps: responses.RequestsMock,
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    """--state over MODEL_ASSIGNER_STATE: --apply reserves in the named store."""
    from model_assigner.bot.cli import main
    from model_assigner.bot.store.codec import parse_state

    env_state = cli_env(monkeypatch, tmp_path / "env", rsps)
    chosen = tmp_path / "chosen" / "state.json"
    config = str(seed_strategy_config())
    assert main(["plan", REPO, "--apply", "--no-wait", "--state", str(chosen),
                 "--config", config]) == 0
    assert "3 queued for the server's workers" in capsys.readouterr().err
    assert not env_state.exists() and not env_state.with_name("queue.sqlite3").exists()
    assert chosen.with_name("queue.sqlite3").exists()  # the queue beside the chosen store
    state = parse_state(store_text(chosen), str(chosen))
    assert {f"{REPO}#1", f"{REPO}#2"} <= set(state.reservations)


def test_plan_apply_waits_out_a_rate_limit_in_the_queue_and_reports_it(
    parts: tuple[Handler, InstallationGateway], rsps: responses.RequestsMock,
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    """GitHub refuses the first comment with a secondary limit (retry-after
    2 s): the installation is blocked for every worker, the plan's jobs wait
    in the queue and the command says so, then everything is written: no
    issue is left half-written, exit 0."""
    import time

    from model_assigner.bot.cli import main
    from model_assigner.bot.store.codec import parse_state

    state_path = cli_env(monkeypatch, tmp_path / "cli", rsps)
    monkeypatch.setenv("MODEL_ASSIGNER_WRITE_INTERVAL_SECONDS", "0")
    rsps.post(f"{R}/issues/1/comments", status=403, headers={"Retry-After": "2"},
              json={"message": "You have exceeded a secondary rate limit."})
    gh = RestMock(rsps)
    expect_writes(gh, {1: "model:opus-4.6", 2: "model:glm-4.7", 3: "model:deferred"})
    started = time.monotonic()
    status = main(["plan", REPO, "--apply"])
    captured = capsys.readouterr()
    assert status == 0, captured.err
    assert time.monotonic() - started >= 2.0
    assert "waiting on a rate limit (until" in captured.err
    assert "done: 3 of 3 decided" in captured.err
    state = parse_state(store_text(state_path), str(state_path))
    assert {k: r.label for k, r in state.records.items()} == {
        f"{REPO}#1": "model:opus-4.6", f"{REPO}#2": "model:glm-4.7",
        f"{REPO}#3": "model:deferred",
    }
    posts = [c.request.url for c in rsps.calls if c.request.method == "POST"
             and c.request.url.endswith("/issues/1/comments")]
    assert len(posts) == 2  # refused once, then written once


def test_plan_and_plan_apply_give_the_same_outputs_on_postgresql(
    parts: tuple[Handler, InstallationGateway], rsps: responses.RequestsMock,
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str],
    pg_url: str,
) -> None:
    """`plan` and `plan --apply` through the command, once with the JSON
    store and once with MODEL_ASSIGNER_STATE=postgresql://...: the same
    table, the same writes to GitHub, and the same reservations, counters,
    records and dependencies afterwards (read back with `reservations` and
    `quota`, and from the stores)."""
    from model_assigner.bot.backends import open_state_store
    from model_assigner.bot.cli import main
    from model_assigner.bot.config_files import load_engine_config

    planned = {1: "model:opus-4.6", 2: "model:glm-4.7", 3: "model:deferred"}
    when = ["--now", NOW.isoformat()]
    outputs: dict[str, dict[str, Any]] = {}
    for kind in ("json", "postgresql"):
        state_file = cli_env(monkeypatch, tmp_path / kind, rsps)
        location = str(state_file) if kind == "json" else pg_url
        monkeypatch.setenv("MODEL_ASSIGNER_STATE", location)
        rsps.calls.reset()
        result: dict[str, Any] = {}
        assert main(["plan", REPO, "--json", *when]) == 0
        result["plan"] = json.loads(capsys.readouterr().out)
        assert writes(rsps) == []
        expect_writes(RestMock(rsps), planned)
        status = main(["plan", REPO, "--apply", *when])
        captured = capsys.readouterr()
        assert status == 0, captured.err
        result["apply"] = captured.out
        result["writes"] = sorted(writes(rsps))
        for command in (["reservations", "--json"], ["quota", "--json"]):
            assert main([*command, *when]) == 0
            result[command[0]] = json.loads(capsys.readouterr().out)
        store = open_state_store(location if kind == "postgresql" else state_file,
                                 load_engine_config(seed_strategy_config()).quotas,
                                 lambda: NOW)
        state = store.read()
        getattr(store, "release", lambda: None)()
        result["state"] = state.model_dump(exclude={"deliveries"})
        outputs[kind] = result
    assert outputs["json"]["plan"] and outputs["json"]["writes"]
    assert set(outputs["postgresql"]["state"]["reservations"]) == {f"{REPO}#1", f"{REPO}#2"}
    for key in outputs["json"]:
        assert outputs["postgresql"][key] == outputs["json"][key], key


@pytest.mark.parametrize("stop", [QueueDbError("database is locked"), KeyboardInterrupt()])
def test_plan_apply_stopped_while_queueing_releases_what_it_did_not_queue(
    parts: tuple[Handler, InstallationGateway], rsps: responses.RequestsMock,
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str],
    stop: BaseException,
) -> None:
    """The queue's database fails (or Ctrl-C) on the second entry: the first
    issue stays queued with its reservation; the others get theirs back, so
    none is left reserved with no label coming. One line, no traceback."""
    from model_assigner.bot.cli import main
    from model_assigner.bot.store.json_store import load_files

    state_path = cli_env(monkeypatch, tmp_path / "cli", rsps)
    accept = SqliteJobQueue.accept
    calls: list[str] = []

    def fails_second(self: SqliteJobQueue, delivery: str, *rest: Any) -> bool:
        calls.append(delivery)
        if len(calls) == 2:
            raise stop
        return accept(self, delivery, *rest)

    monkeypatch.setattr(SqliteJobQueue, "accept", fails_second)
    status = main(["plan", REPO, "--apply", "--no-wait"])
    err = capsys.readouterr().err
    assert status == 2
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert "1 issue(s) queued, 2 reservation(s) released" in err
    (job,) = SqliteJobQueue(QueueDb(state_path.with_name("queue.sqlite3"))).jobs()
    state = load_files(state_path)  # with its journal
    # Only the queued issue holds a reservation, and a record awaiting its write.
    assert set(state.reservations) <= {job.key} and set(state.records) == {job.key}
    spent = sum(r.payment.cost_usd for r in state.reservations.values()
                if r.payment.kind == "api")
    assert state.api_budget.spent_usd == pytest.approx(spent)
    assert writes(rsps) == []


def test_a_usage_comment_written_after_the_plan_reserved_does_not_make_it_skip(
    parts: tuple[Handler, InstallationGateway], rsps: responses.RequestsMock
) -> None:
    """A usage job edits issue 1's comment (and so its record's comment id
    and digest) between the plan's reservation and its write-back: that is
    no re-decision, so the plan still writes issue 1 rather than leaving its
    new reservation under the old label."""
    from model_assigner.bot.comment import MARKER
    from model_assigner.bot.usage_store import record_report
    from model_assigner.bot.usage_writeback import write_usage_comment
    from model_assigner.core.usage import TokenUsage, UsageReport
    from tests.bot.support import BOT

    handler, gateway = parts
    gh = RestMock(rsps)
    expect_writes(gh, {1: "model:opus-4.6", 2: "model:glm-4.7", 3: "model:deferred"})
    apply_plan(handler, gateway)
    with handler.store.transaction(NOW) as state:
        record_report(state, f"{REPO}#1", UsageReport(run_id="r1", lines=[
            TokenUsage(input_tokens=7_000)]), handler.engine.models, NOW)
    repo_plan, left = reserve_plan(handler, gateway, gateway.github, REPO, NOW)
    db = QueueDb(handler.store.path.with_name("queue.sqlite3"))
    queue = SqliteJobQueue(db)
    queued = enqueue_plan(handler, queue, repo_plan, left, INSTALLATION)
    rsps.remove(responses.GET, f"{R}/issues/1/comments")
    gh.comments(1, [(601, BOT, f"{MARKER}\nthe plan's comment")])
    gh.edit_comment(601)
    assert write_usage_comment(handler, gateway, REPO, 1)  # the usage job, first
    Worker(handler, queue, RateLimiter(db), max_attempts=1,
           tasks={PLAN_EVENT: plan_write_task(handler)}).drain()
    outcome = queue.outcome(queued[f"{REPO}#1"])
    assert outcome is not None and outcome[1]["status"] == "assigned", outcome
    state = handler.store.read()
    assert state.reservations[f"{REPO}#1"].model == "opus-4.6"
    assert state.records[f"{REPO}#1"].label == "model:opus-4.6"


def test_a_plan_entry_without_an_installation_ends_at_once_and_releases(
    parts: tuple[Handler, InstallationGateway], rsps: responses.RequestsMock
) -> None:
    """No installation: no gateway can write it. The entry ends with a clear
    outcome (no retries to a dead letter) and the plan's reservation goes."""
    handler, gateway = parts
    repo_plan, left = reserve_plan(handler, gateway, gateway.github, REPO, NOW)
    assert handler.store.read().reservations
    db = QueueDb(handler.store.path.with_name("queue.sqlite3"))
    queue = SqliteJobQueue(db)
    queued = enqueue_plan(handler, queue, repo_plan, left, None)
    Worker(handler, queue, RateLimiter(db), max_attempts=8, retry_base=0.0,
           tasks={PLAN_EVENT: plan_write_task(handler)}).drain()
    assert queue.jobs() == []  # none dead, none waiting
    for delivery in queued.values():
        outcome = queue.outcome(delivery)
        assert outcome is not None and outcome[0] == 400
        assert "without an installation" in outcome[1]["error"]
    state = handler.store.read()
    assert state.reservations == {} and state.api_budget.spent_usd == 0
    assert writes(rsps) == []
