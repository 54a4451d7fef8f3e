"""Issue 10, point 7 (fewer calls), end to end: the real gunicorn server (2
worker processes, their queue workers and request threads) against the
GitHub stand-in, which answers a GET naming the last ETag in
``If-None-Match`` with ``304 Not Modified`` (free of the rate limit) and
counts the GETs it answered 200 and 304.

- The default branch is read again whenever its head is older than
  MODEL_ASSIGNER_BRANCH_TTL_SECONDS (0 here: every decision): conditionally,
  so an unchanged branch is a 304; the tree and the repository's config are
  read once per process and commit, and a commit that leaves the config as
  it was costs no config read.
- Each model label is created once for the repository, by one process of
  the two, and remembered in the queue's database by both.
- One installation token and one GET /app per process, not per thread.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from bench.github_standin import GitHubStandIn, StandInServer
from tests.bot.support import APP_ID, INSTALLATION, REPO, SLUG, SMALL_BACKEND, app_key
from tests.e2e.support import (
    app_env,
    event,
    model_labels,
    new_issue,
    start_server,
    stop_server,
)

PROCESSES = 2  # WEB_CONCURRENCY in start_server
CONFIG = "labels:\n  prefix: 'model:'\n"


@pytest.fixture
def github() -> Iterator[tuple[GitHubStandIn, StandInServer]]:
    standin = GitHubStandIn(APP_ID, app_key().public_pem, slug=SLUG)
    standin.add_repo(REPO, installation_id=INSTALLATION, files=20, default_branch="master",
                     config_text="# model-assigner settings\n")
    server = StandInServer(standin).start()
    try:
        yield standin, server
    finally:
        server.stop()


def test_branch_tree_and_config_reads_are_conditional_and_labels_created_once(
    github: tuple[GitHubStandIn, StandInServer], tmp_path: Path
) -> None:
    standin = github[0]
    server = start_server(tmp_path, app_env(
        github, MODEL_ASSIGNER_BRANCH_TTL_SECONDS="0", MODEL_ASSIGNER_QUEUE_WORKERS="2"), "app")
    try:
        decided = 0
        for number in range(1, 9):
            new_issue(standin, number, ["P0", "backend"], SMALL_BACKEND)
            assert server.deliver(event(standin, "opened", number),
                                  delivery=str(uuid.uuid4())).status_code == 200
            decided += 1
        # A push that leaves the config as it was: a new commit and tree.
        standin.repo(REPO).revision += 1
        for number in range(9, 13):
            new_issue(standin, number, ["P0", "backend"], SMALL_BACKEND)
            assert server.deliver(event(standin, "opened", number)).status_code == 200
            decided += 1
        server.drained()
    finally:
        stop_server(server)

    for number in range(1, 13):
        assert len(model_labels(standin, number)) == 1
    commits = 2
    branch = standin.served(f"/repos/{REPO}/branches/*")
    # Every decision read the branch (TTL 0); only a new head costs a whole answer.
    assert sum(branch.values()) >= decided
    assert branch.get(200, 0) <= PROCESSES * commits, branch
    assert branch.get(304, 0) >= decided - PROCESSES * commits, branch
    trees = standin.served(f"/repos/{REPO}/git/trees/*")
    assert trees.get(200, 0) <= PROCESSES * commits, trees
    configs = standin.served(f"/repos/{REPO}/contents/*")
    # The config's blob is the same in the second commit's tree: not read again.
    assert configs.get(200, 0) <= PROCESSES, configs

    # Each label created once for the repository, not once per process.
    created: dict[str, int] = {}
    for call in standin.calls("POST", f"/repos/{REPO}/labels"):
        name = str(call.body["name"]).lower()
        created[name] = created.get(name, 0) + 1
    assert created and all(times == 1 for times in created.values()), created

    # One token and one GET /app per process (the master's credentials
    # check reads GET /app once more before it forks).
    tokens = standin.calls("POST", "/app/installations/*/access_tokens")
    assert len(tokens) <= PROCESSES, len(tokens)
    assert len(standin.calls("GET", "/app")) <= PROCESSES + 1
