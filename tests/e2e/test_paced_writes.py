"""No GitHub write bypasses the installation's rate policy (issue 10), end
to end: the real gunicorn server (2 processes, their queue workers, their
request threads) against the GitHub stand-in told to refuse any
content-creating request that arrives sooner after the previous one than
the policy's interval allows. Decisions (comments, labels, label creation)
and usage reports (the usage section of the bot's comment, from
``issue_comment`` deliveries) arrive together; every write must have
waited for its slot, so the stand-in refuses none."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

from bench.github_standin import GitHubStandIn, StandInServer
from model_assigner.bot.usage_comment import START
from tests.bot.support import (
    API,
    REPO,
    SMALL_BACKEND,
    webhook,
)
from tests.e2e.support import (
    app_env,
    bot_comments,
    event,
    model_labels,
    new_issue,
    start_server,
    stop_server,
)

REPORTER = "github-actions[bot]"
# The policy's seconds between writes, and the stand-in refuses writes closer
# than GUARD: a write let through without waiting comes well under GUARD
# (tens of ms), while a paced one must be delayed by INTERVAL - GUARD (0.8 s)
# of CPU starvation on a loaded machine before it is wrongly refused.
INTERVAL = 1.0
GUARD = 0.2


def usage_comment(standin: GitHubStandIn, number: int, run: str) -> dict[str, Any]:
    """An agent's comment on the issue carrying a usage report (the
    documented issue_comment.created payload)."""
    body = ("Agent finished.\n<!-- model-assigner:usage-report "
            f'{{"run_id": "{run}", "lines": [{{"input_tokens": 20000, '
            '"output_tokens": 2000}]} -->')
    payload = webhook("issue_comment.created")
    payload["issue"] = standin.issue_json(REPO, number, API)
    payload["repository"] = {**payload["repository"], "full_name": REPO}
    payload["comment"]["user"] = {**payload["comment"]["user"], "login": REPORTER,
                                  "type": "Bot"}
    payload["comment"]["body"] = body
    return payload


def test_every_write_waits_for_its_slot_usage_comments_included(
    github: tuple[GitHubStandIn, StandInServer], tmp_path: Path
) -> None:
    standin = github[0]
    server = start_server(tmp_path, app_env(
        github, MODEL_ASSIGNER_WRITE_INTERVAL_SECONDS=str(INTERVAL),
        MODEL_ASSIGNER_USAGE_COMMENT_LOGINS=REPORTER), "app")
    try:
        for number in (1, 2, 3):
            new_issue(standin, number, ["P0", "backend"], SMALL_BACKEND)
            assert server.deliver(event(standin, "opened", number)).status_code == 200
        standin.require_write_interval(GUARD)
        # Together: three usage reports on the decided issues, two new issues.
        answers = []
        for number in (1, 2, 3):
            answers.append(server.post(usage_comment(standin, number, f"run-{number}"),
                                       "issue_comment", str(uuid.uuid4())))
        for number in (4, 5):
            new_issue(standin, number, ["P0", "backend"], SMALL_BACKEND)
            answers.append(server.post(event(standin, "opened", number), "issues",
                                       str(uuid.uuid4())))
        assert all(a.status_code in (200, 202) for a in answers), [a.text for a in answers]
        server.drained(timeout=120)  # ~20 writes, 1 s apart
        store = server.store()
    finally:
        stop_server(server)

    assert standin.unpaced == []  # no write came sooner than the policy allows
    for number in (1, 2, 3):  # and the usage is in each bot comment
        [comment] = bot_comments(standin, number)
        assert START in comment, comment
        assert f"run-{number}" in store["usage"][f"{REPO}#{number}"]["runs"]
    for number in (4, 5):
        assert len(model_labels(standin, number)) == 1
