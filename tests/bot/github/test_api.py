"""bot/github/api.py against the exact REST calls PyGithub makes (`responses`),
and against the GitHub stand-in over real HTTP where timing matters (waits,
timeouts), since `responses` never sleeps."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import jwt
import pytest
import responses

import model_assigner.bot.github.api as github_api
from bench.github_standin import GitHubStandIn, StandInServer
from model_assigner.bot.comment import MARKER
from model_assigner.bot.deadline import delivery_budget
from model_assigner.bot.github.api import GitHubApp, InstallationGateway
from model_assigner.bot.github.gateway import (
    CommentGone,
    GitHubRateLimited,
    GitHubUnavailable,
    IssueGone,
    Workspace,
)
from model_assigner.bot.github.retry import delivery_retry
from model_assigner.bot.queue.db import QueueDb
from model_assigner.bot.queue.ratelimit import RateLimiter
from model_assigner.bot.settings import Settings
from tests.bot.rest_mock import API, COMMIT_SHA, TOKEN, TREE_SHA, R, RestMock
from tests.bot.support import APP_ID, BOT, INSTALLATION, REPO, app_key, rest_example, webhook
from tests.helpers import CONFIG_DIR


def settings_for(
    api_url: str = "https://api.github.com", tmp: Path = Path("/nonexistent")
) -> Settings:
    return Settings(
        app_id=APP_ID,
        private_key=app_key().private_pem,
        webhook_secret="s",
        api_url=api_url,
        state_path=tmp / "state.json",
        config_dir=CONFIG_DIR,
        bot_login=None,
    )


@pytest.fixture
def rsps() -> Iterator[responses.RequestsMock]:
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        yield mock


@pytest.fixture
def gh(rsps: responses.RequestsMock) -> RestMock:
    mock = RestMock(rsps)
    mock.token()
    mock.app()  # GET /app: whose comments are ours
    return mock


@pytest.fixture
def gateway(gh: RestMock) -> InstallationGateway:
    return GitHubApp(settings_for()).installation(INSTALLATION)


def payload_issue(**changes: object) -> dict[str, object]:
    return webhook("issues.opened", **changes)["issue"]  # type: ignore[arg-type,no-any-return]


# -- App authentication --------------------------------------------------------


def test_bot_login_comes_from_get_app_once_signed_with_the_app_jwt(
    rsps: responses.RequestsMock,
) -> None:
    gh = RestMock(rsps)
    gh.app()
    app = GitHubApp(settings_for())
    assert app.bot_login() == BOT
    assert app.bot_login() == BOT
    assert gh.summary() == [("GET", "/app")]
    request = rsps.calls[0].request
    scheme, _, token = str(request.headers["Authorization"]).partition(" ")
    assert scheme == "Bearer"
    claims = jwt.decode(token, app_key().public_pem, algorithms=["RS256"])
    assert claims["iss"] == str(APP_ID)
    assert claims["exp"] - claims["iat"] <= 600


def test_bot_login_failure_is_github_unavailable(rsps: responses.RequestsMock) -> None:
    rsps.get(f"{API}/app", json={"message": "Server Error"}, status=500)
    with pytest.raises(GitHubUnavailable, match="GET /app: HTTP 500"):
        GitHubApp(settings_for()).bot_login()
    assert len(rsps.calls) == 3  # one try and two retries


def test_installation_token_is_minted_once_and_sent_as_token(
    gh: RestMock, gateway: InstallationGateway
) -> None:
    issue = payload_issue()
    gh.issue(issue)
    assert gateway.get_issue(REPO, 1, {})["number"] == 1
    assert gateway.get_issue(REPO, 1, {})["title"] == issue["title"]
    assert gh.summary() == [
        ("POST", "/app/installations/1/access_tokens"),
        ("GET", f"/repos/{REPO}/issues/1"),
        ("GET", f"/repos/{REPO}/issues/1"),
    ]
    calls = gh.rsps.calls
    assert str(calls[0].request.headers["Authorization"]).startswith("Bearer ")
    assert calls[1].request.headers["Authorization"] == f"token {TOKEN}"
    assert calls[2].request.headers["Authorization"] == f"token {TOKEN}"


def test_one_client_per_installation(gh: RestMock) -> None:
    app = GitHubApp(settings_for())
    assert app.installation(INSTALLATION) is app.installation(INSTALLATION)
    assert app.installation(INSTALLATION) is not app.installation(INSTALLATION + 1)


# -- reads ------------------------------------------------------------------------


@pytest.mark.parametrize("status", [404, 410])
def test_a_missing_issue_is_gone(gh: RestMock, gateway: InstallationGateway, status: int) -> None:
    gh.issue({"number": 9}, status=status)
    with pytest.raises(IssueGone):
        gateway.get_issue(REPO, 9, {})


def test_a_transferred_issue_is_gone_though_github_redirects_to_it(
    gh: RestMock, gateway: InstallationGateway
) -> None:
    """GitHub answers 301 for an issue moved to another repository, and
    PyGithub follows it: the answer is the issue in its new home, which for
    this repository means gone (its reservation is released, not re-made)."""
    moved = "https://api.github.com/repositories/1296269/issues/1"
    gh.rsps.get(f"{R}/issues/9", status=301, headers={"Location": moved},
                json={"message": "Moved Permanently", "url": moved})
    elsewhere = rest_example("issues/get")
    elsewhere.update(number=1, repository_url="https://api.github.com/repos/octo-org/octo-repo")
    gh.rsps.get(moved.replace("api.github.com", "api.github.com:443"), json=elsewhere)
    with pytest.raises(IssueGone, match="moved to octo-org/octo-repo"):
        gateway.get_issue(REPO, 9, {})
    last = [c for c in gh.summary() if c[0] == "GET"][-1]
    assert last == ("GET", "/repositories/1296269/issues/1")


def test_the_issue_itself_is_read(gh: RestMock, gateway: InstallationGateway) -> None:
    here = rest_example("issues/get")
    here.update(number=9, repository_url=f"https://api.github.com/repos/{REPO}")
    gh.issue(here)
    assert gateway.get_issue(REPO, 9, {})["number"] == 9


def test_workspace_counts_the_blobs_of_the_default_branch_tree_once_per_commit(
    gh: RestMock, gateway: InstallationGateway
) -> None:
    gh.branch()
    gh.tree(blobs=7)
    first = gateway.workspace(REPO, "master")
    assert first == Workspace(commit_sha=COMMIT_SHA, file_count=7)
    assert gateway.workspace(REPO, "master") == first
    assert [c for c in gh.summary() if c[0] == "GET"] == [
        ("GET", f"/repos/{REPO}/branches/master"),
        ("GET", f"/repos/{REPO}/git/trees/{TREE_SHA}?recursive=1"),
    ]


def test_workspace_of_an_empty_repository_is_no_files(
    gh: RestMock, gateway: InstallationGateway
) -> None:
    gh.branch(status=404)
    assert gateway.workspace(REPO, "master") == Workspace(commit_sha=None, file_count=0)


def test_repo_config_is_read_at_the_commit_and_cached(
    gh: RestMock, gateway: InstallationGateway
) -> None:
    text = "labels:\n  priority_aliases:\n    urgent: P0\n"
    gh.config(text)
    assert gateway.repo_config_text(REPO, COMMIT_SHA) == text
    assert gateway.repo_config_text(REPO, COMMIT_SHA) == text
    assert gh.summary()[1:] == [
        ("GET", f"/repos/{REPO}/contents/.github/model-assigner.yml?ref={COMMIT_SHA}")
    ]


def test_no_repo_config_is_none(gh: RestMock, gateway: InstallationGateway) -> None:
    gh.config(None)
    assert gateway.repo_config_text(REPO, COMMIT_SHA) is None
    assert gateway.repo_config_text(REPO, None) is None  # empty repository: no request
    assert len(gh.calls()) == 2


OCTOCAT_USER = {"login": "octocat", "id": 1, "type": "User"}
BOT_USER = {"login": BOT, "id": 2, "type": "Bot"}


def test_find_comment_follows_pages_to_the_marker(
    gh: RestMock, gateway: InstallationGateway, rsps: responses.RequestsMock
) -> None:
    first = f"{R}/issues/1/comments"
    page2 = "https://api.github.com/repositories/1/issues/1/comments?page=2"
    rsps.get(
        first,
        json=[{"id": 1, "body": "first", "url": f"{API}/x/1", "user": OCTOCAT_USER}],
        headers={"Link": f'<{page2}>; rel="next", <{page2}>; rel="last"'},
    )
    rsps.get(
        "https://api.github.com:443/repositories/1/issues/1/comments",
        json=[
            {"id": 2, "body": f"quoting {MARKER}", "user": OCTOCAT_USER},
            {"id": 3, "body": f"{MARKER}\nours", "user": BOT_USER},
        ],
        match=[responses.matchers.query_param_matcher({"page": "2"})],
    )
    assert gateway.find_comment(REPO, 1, MARKER) == (3, f"{MARKER}\nours")


def test_find_comment_none(gh: RestMock, gateway: InstallationGateway) -> None:
    gh.comments(1, [(1, "octocat", "Me too")])
    assert gateway.find_comment(REPO, 1, MARKER) is None


def test_find_comment_takes_only_our_own_apps(gh: RestMock, gateway: InstallationGateway) -> None:
    """A person quoting the marker, or another App that copied it, is not us:
    editing their comment would be refused (403) on every delivery."""
    gh.comments(1, [
        (1, "octocat", f"{MARKER}\nquoted"),
        (2, "other-app[bot]", f"{MARKER}\ncopied"),
        (3, BOT, f"{MARKER}\nours"),
    ])
    assert gateway.find_comment(REPO, 1, MARKER) == (3, f"{MARKER}\nours")
    gh.rsps.remove(responses.GET, f"{R}/issues/1/comments")
    gh.comments(1, [(2, "other-app[bot]", f"{MARKER}\ncopied")])
    assert gateway.find_comment(REPO, 1, MARKER) is None


# -- writes -----------------------------------------------------------------------


def test_create_and_edit_comment_send_only_the_body(
    gh: RestMock, gateway: InstallationGateway
) -> None:
    gh.create_comment(1, comment_id=812)
    gh.edit_comment(812)
    assert gateway.create_comment(REPO, 1, f"{MARKER}\nhello") == 812
    gateway.edit_comment(REPO, 812, f"{MARKER}\nbye")
    calls = gh.calls()[1:]
    assert [(c.method, c.url, c.body) for c in calls] == [
        ("POST", f"/repos/{REPO}/issues/1/comments", {"body": f"{MARKER}\nhello"}),
        ("PATCH", f"/repos/{REPO}/issues/comments/812", {"body": f"{MARKER}\nbye"}),
    ]


def test_editing_a_deleted_comment_says_so(gh: RestMock, gateway: InstallationGateway) -> None:
    gh.edit_comment(812, status=404)
    with pytest.raises(CommentGone):
        gateway.edit_comment(REPO, 812, f"{MARKER}\nbye")


def test_ensure_label_creates_it_once_and_accepts_already_exists(
    gh: RestMock, gateway: InstallationGateway
) -> None:
    gh.create_label("model:glm-4.7", "6f42c1", "about", status=422)
    gateway.ensure_label(REPO, "model:glm-4.7", "6f42c1", "about")
    gateway.ensure_label(REPO, "model:glm-4.7", "6f42c1", "about")  # cached: no call
    assert [(c.method, c.url, c.body) for c in gh.calls()[1:]] == [
        ("POST", f"/repos/{REPO}/labels",
         {"name": "model:glm-4.7", "color": "6f42c1", "description": "about"}),
    ]


def test_add_label_posts_a_bare_list(gh: RestMock, gateway: InstallationGateway) -> None:
    gh.add_labels(1, ["model:glm-4.7"])
    gateway.add_label(REPO, 1, "model:glm-4.7")
    assert gh.calls()[1].body == ["model:glm-4.7"]


def test_remove_label_quotes_the_whole_name(gh: RestMock, gateway: InstallationGateway) -> None:
    gh.remove_label(1, "model%3Agpt%2F4o")
    gh.remove_label(1, "model%3Agone", status=404)
    gateway.remove_label(REPO, 1, "model:gpt/4o")
    gateway.remove_label(REPO, 1, "model:gone")  # not on the issue: what we wanted
    assert gh.summary()[1:] == [
        ("DELETE", f"/repos/{REPO}/issues/1/labels/model%3Agpt%2F4o"),
        ("DELETE", f"/repos/{REPO}/issues/1/labels/model%3Agone"),
    ]


def test_writes_are_not_paced(gh: RestMock, gateway: InstallationGateway) -> None:
    """PyGithub's default 1 s between writes would eat the delivery window."""
    gh.add_labels(1, ["a"])
    start = time.monotonic()
    for _ in range(5):
        gateway.add_label(REPO, 1, "a")
    assert time.monotonic() - start < 0.5


# -- retries ------------------------------------------------------------------------


def test_5xx_is_retried_then_succeeds(gh: RestMock, gateway: InstallationGateway) -> None:
    rsps = gh.rsps
    rsps.get(f"{R}/issues/1", json={"message": "Server Error"}, status=500)
    rsps.get(f"{R}/issues/1", body="<html>502 Bad Gateway</html>", status=502)
    gh.issue(payload_issue())
    assert gateway.get_issue(REPO, 1, {})["number"] == 1
    assert gh.summary().count(("GET", f"/repos/{REPO}/issues/1")) == 3


@pytest.mark.parametrize("status", [500, 502, 503])
def test_write_5xx_is_retried_then_succeeds(
    gh: RestMock, gateway: InstallationGateway, status: int
) -> None:
    gh.create_comment(1, status=status)
    gh.create_comment(1, comment_id=77)
    assert gateway.create_comment(REPO, 1, f"{MARKER}\nx") == 77
    assert len(gh.calls()) == 3


def test_persistent_5xx_is_github_unavailable_after_two_retries(
    gh: RestMock, gateway: InstallationGateway
) -> None:
    gh.rsps.patch(f"{R}/issues/comments/5", json={"message": "Server Error"}, status=502)
    with pytest.raises(GitHubUnavailable, match="HTTP 502"):
        gateway.edit_comment(REPO, 5, f"{MARKER}\nx")
    assert gh.summary()[1:] == [("PATCH", f"/repos/{REPO}/issues/comments/5")] * 3


def test_secondary_rate_limit_with_retry_after_is_retried(
    gh: RestMock, gateway: InstallationGateway
) -> None:
    gh.rsps.get(
        f"{R}/issues/1",
        status=403,
        headers={"Retry-After": "1"},
        json={"message": "You have exceeded a secondary rate limit. Please retry later."},
    )
    gh.issue(payload_issue())
    with delivery_budget():  # inside a delivery (inline): sat out when it fits
        assert gateway.get_issue(REPO, 1, {})["number"] == 1
    assert len(gh.calls()) == 3


def test_a_403_that_is_no_rate_limit_is_not_retried(
    gh: RestMock, gateway: InstallationGateway
) -> None:
    gh.rsps.post(
        f"{R}/issues/1/comments",
        status=403,
        json={"message": "Resource not accessible by integration"},
    )
    with pytest.raises(GitHubUnavailable, match="403"):
        gateway.create_comment(REPO, 1, f"{MARKER}\nx")
    assert len(gh.calls()) == 2


def test_client_timeout_is_an_int_within_the_delivery_window() -> None:
    options = github_api.CLIENT_OPTIONS
    assert isinstance(options["timeout"], int)
    assert options["seconds_between_requests"] is None
    assert options["seconds_between_writes"] is None
    retry = delivery_retry()
    assert retry.total == 2 and retry.secondary_rate_wait <= 3


# -- over real HTTP, against the stand-in (waits and timeouts) ----------------------


@pytest.fixture
def standin() -> Iterator[tuple[GitHubStandIn, StandInServer]]:
    fake = GitHubStandIn(APP_ID, app_key().public_pem)
    fake.add_repo(REPO, installation_id=INSTALLATION, files=5)
    fake.add_issue(REPO, 1, title="t", labels=["P1"])
    server = StandInServer(fake).start()
    try:
        yield fake, server
    finally:
        server.stop()


@pytest.fixture
def live(
    standin: tuple[GitHubStandIn, StandInServer], monkeypatch: pytest.MonkeyPatch
) -> tuple[GitHubStandIn, InstallationGateway]:
    monkeypatch.setitem(github_api.CLIENT_OPTIONS, "timeout", 1)
    fake, server = standin
    gateway = GitHubApp(settings_for(server.url)).installation(INSTALLATION)
    gateway.get_issue(REPO, 1, {})  # mint the token first
    fake.clear_calls()
    return fake, gateway


def test_a_retry_after_too_long_for_the_delivery_fails_fast(
    live: tuple[GitHubStandIn, InstallationGateway],
) -> None:
    fake, gateway = live
    fake.inject_fault(f"/repos/{REPO}/issues/1", "secondary_rate_limit", retry_after=60)
    start = time.monotonic()
    with delivery_budget(), pytest.raises(GitHubUnavailable, match="Retry-After 60s"):
        gateway.get_issue(REPO, 1, {})
    assert time.monotonic() - start < 1
    assert len(fake.calls()) == 1


def test_a_short_retry_after_is_waited_out(
    live: tuple[GitHubStandIn, InstallationGateway],
) -> None:
    fake, gateway = live
    fake.inject_fault(f"/repos/{REPO}/issues/1", "secondary_rate_limit", retry_after=1)
    start = time.monotonic()
    with delivery_budget():
        assert gateway.get_issue(REPO, 1, {})["number"] == 1
    assert 0.9 < time.monotonic() - start < 3
    assert [r.status for r in fake.calls()] == [403, 200]


@pytest.mark.parametrize(
    ("headers", "message", "wait"),
    [
        ({"Retry-After": "60"}, "You have exceeded a secondary rate limit.", 60.0),
        ({}, "You have exceeded a secondary rate limit.", None),
        ({"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": "RESET"},
         "API rate limit exceeded for installation ID 1.", 120.0),
    ],
)
def test_a_queue_worker_gets_the_rate_limit_at_once_to_share_it(
    gh: RestMock, gateway: InstallationGateway, headers: dict[str, str], message: str,
    wait: float | None,
) -> None:
    """Outside a delivery (a queue worker), a rate limit is not sat out in one
    thread: it is raised with GitHub's wait after one request, for the rate
    policy to hold every worker of the installation."""
    reset = int(time.time()) + 119
    headers = {k: v.replace("RESET", str(reset)) for k, v in headers.items()}
    gh.rsps.get(f"{R}/issues/1", status=403, headers=headers, json={"message": message})
    gh.issue(payload_issue())
    start = time.monotonic()
    with pytest.raises(GitHubRateLimited) as raised:
        gateway.get_issue(REPO, 1, {})
    assert time.monotonic() - start < 1
    assert raised.value.answered
    if wait is None:
        assert raised.value.wait is None
    else:
        assert raised.value.wait == pytest.approx(wait, abs=2)
    assert [c.url for c in gh.calls()].count(f"/repos/{REPO}/issues/1") == 1


def test_a_403_that_is_no_rate_limit_is_no_rate_limit_for_a_worker(
    gh: RestMock, gateway: InstallationGateway
) -> None:
    gh.rsps.post(f"{R}/issues/1/comments", status=403,
                 json={"message": "Resource not accessible by integration"})
    with pytest.raises(GitHubUnavailable) as raised:
        gateway.create_comment(REPO, 1, f"{MARKER}\nx")
    assert not isinstance(raised.value, GitHubRateLimited)


def test_a_hanging_read_times_out_and_is_retried_twice(
    live: tuple[GitHubStandIn, InstallationGateway],
) -> None:
    fake, gateway = live
    fake.inject_fault(f"/repos/{REPO}/issues/1", "hang", times=None, hang_seconds=3)
    start = time.monotonic()
    with pytest.raises(GitHubUnavailable):
        gateway.get_issue(REPO, 1, {})
    elapsed = time.monotonic() - start
    assert len(fake.calls()) == 3
    # 3 tries of `timeout` seconds plus backoff: with the real 3 s timeout that
    # is ~9.5 s, the whole of GitHub's 10 s window.
    assert 2.9 < elapsed < 5


def test_a_slow_comment_post_is_not_sent_twice(
    live: tuple[GitHubStandIn, InstallationGateway],
) -> None:
    """GitHub did create the comment, only too slowly: a retry would duplicate it."""
    fake, gateway = live
    fake.inject_fault(
        f"/repos/{REPO}/issues/1/comments", "hang", times=None, method="POST",
        hang_seconds=1.5, then_status=None,
    )
    with pytest.raises(GitHubUnavailable):
        gateway.create_comment(REPO, 1, f"{MARKER}\nx")
    time.sleep(0.8)  # let the stand-in finish the slow request
    assert len(fake.calls("POST")) == 1
    assert len(fake.comments_of(REPO, 1)) == 1


# -- a person's role on a repository (issue 12, item 16) ---------------------------------


@pytest.mark.parametrize(
    ("role_name", "permission", "role"),
    [("triage", "read", "triage"), ("maintain", "write", "maintain"), ("admin", "admin", "admin"),
     ("custom-reviewer", "read", "read"), ("", "write", "write"), ("none", "none", "none")],
)
def test_a_persons_role_is_githubs_role_name_or_its_base_permission(
    gh: RestMock, gateway: InstallationGateway, rsps: responses.RequestsMock,
    role_name: str, permission: str, role: str,
) -> None:
    from tests.bot.support import rest_example as example

    data = example("repos/get-collaborator-permission-level")
    data.update(role_name=role_name, permission=permission)
    rsps.get(f"https://api.github.com:443/repos/{REPO}/collaborators/monalisa/permission",
             json=data)
    assert gateway.permission(REPO, "monalisa") == role
    assert gateway.permission(REPO, "MonaLisa") == role  # cached, logins case-blind
    assert [c for c in gh.summary() if "/collaborators/" in c[1]] == [
        ("GET", f"/repos/{REPO}/collaborators/monalisa/permission")
    ]


@pytest.mark.parametrize(("status", "role"), [(404, "none"), (403, "none")])
def test_not_a_collaborator_has_no_role(
    gateway: InstallationGateway, rsps: responses.RequestsMock, status: int, role: str
) -> None:
    rsps.get(f"https://api.github.com:443/repos/{REPO}/collaborators/stranger/permission",
             json={"message": "Not Found"}, status=status)
    assert gateway.permission(REPO, "stranger") == role


RATE_LIMITS = [
    pytest.param({"X-RateLimit-Limit": "5000", "X-RateLimit-Remaining": "0",
                  "X-RateLimit-Reset": "RESET"},
                 "API rate limit exceeded for installation ID 1.", id="x-ratelimit-remaining"),
    pytest.param({"Retry-After": "60"},
                 "You have exceeded a secondary rate limit. Please wait a few minutes before "
                 "you try again.", id="retry-after"),
]


@pytest.mark.parametrize(("headers", "message"), RATE_LIMITS)
def test_a_rate_limited_role_read_is_a_rate_limit_not_no_role(
    gh: RestMock, gateway: InstallationGateway, rsps: responses.RequestsMock,
    headers: dict[str, str], message: str,
) -> None:
    """A rate limit is a 403 too, but says nothing of the person: raised for
    the queue to wait (a worker: no delivery budget), and not cached, so the
    next read, once GitHub answers, gives the role. Before the fix it read
    as "none", cached for five minutes."""
    reset = str(int(time.time()) + 600)
    url = f"{API}/repos/{REPO}/collaborators/maintainer/permission"
    rsps.get(url, status=403, json={"message": message},
             headers={k: v.replace("RESET", reset) for k, v in headers.items()})
    gh.permission("admin", "maintainer")
    with pytest.raises(GitHubRateLimited) as raised:
        gateway.permission(REPO, "maintainer")
    assert raised.value.answered
    assert gateway.permission(REPO, "maintainer") == "admin"
    assert gateway.permission(REPO, "maintainer") == "admin"  # this one is cached
    asked = [c for c in gh.calls() if "/collaborators/" in c.url]
    assert len(asked) == 2


def test_a_rate_limited_role_read_inside_a_delivery_is_a_rate_limit(
    gh: RestMock, gateway: InstallationGateway, rsps: responses.RequestsMock
) -> None:
    """Inside a delivery PyGithub's retry refuses a reset too far off with
    its own 403 (RateLimitExceededExceedsMaxWait): a rate limit still."""
    url = f"{API}/repos/{REPO}/collaborators/maintainer/permission"
    rsps.get(url, status=403, json={"message": "API rate limit exceeded for installation ID 1."},
             headers={"X-RateLimit-Remaining": "0",
                      "X-RateLimit-Reset": str(int(time.time()) + 600)})
    gh.permission("admin", "maintainer")
    with delivery_budget(), pytest.raises(GitHubRateLimited):
        gateway.permission(REPO, "maintainer")
    with delivery_budget():
        assert gateway.permission(REPO, "maintainer") == "admin"


def test_no_role_is_asked_while_the_installation_is_rate_limited(
    gh: RestMock, rsps: responses.RequestsMock, tmp_path: Path
) -> None:
    """The rate policy's block holds this read as it holds the others: no
    request goes out, and the job waits."""
    limiter = RateLimiter(QueueDb(tmp_path / "queue.sqlite3"))
    gateway = GitHubApp(settings_for(), limiter).installation(INSTALLATION)
    gh.permission("admin", "maintainer")
    limiter.block(INSTALLATION, 60.0, "primary rate limit")
    with pytest.raises(GitHubRateLimited):
        gateway.permission(REPO, "maintainer")
    assert [c for c in gh.calls() if "/collaborators/" in c.url] == []


def test_a_failing_permission_read_is_github_unavailable(
    gateway: InstallationGateway, rsps: responses.RequestsMock
) -> None:
    rsps.get(f"https://api.github.com:443/repos/{REPO}/collaborators/someone/permission",
             json={"message": "boom"}, status=500)
    with pytest.raises(GitHubUnavailable, match="permission"):
        gateway.permission(REPO, "someone")
