"""``plan OWNER/REPO --apply`` through the queue (issue 10, point 5), end to
end: the real gunicorn server and the command, as an operator runs them,
against the GitHub stand-in.

The command reserves the plan, puts each issue into the durable queue (the
job a webhook delivery for the issue would join) and reports progress while
queue workers write (its own, and the server's): a rate limit GitHub answers
holds every worker of the installation, and the command says it waits on
it, instead of racing the limit. With ``--no-wait`` it returns at once and
the server's workers write. Every issue ends with one label, one comment and
one reservation; a person's label is left alone."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from bench.github_standin import GitHubStandIn, StandInServer
from tests.bot.support import APP_ID, REPO, SECRET, SMALL_BACKEND, app_key
from tests.e2e.support import (
    FAST_QUEUE,
    app_env,
    assigned_everywhere,
    bot_comments,
    charged_once,
    model_labels,
    new_issue,
    start_server,
    stop_server,
)
from tests.helpers import seed_strategy_config, shifted_clock_env

VENV_BIN = Path(sys.executable).parent
ISSUES = range(1, 7)


def plan_apply(tmp: Path, api_url: str, state: Path,
               *extra: str) -> subprocess.CompletedProcess[str]:
    env = {
        "PATH": f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '/usr/bin:/bin')}",
        "HOME": str(tmp),
        "LANG": "C.UTF-8",
        "GITHUB_APP_ID": str(APP_ID),
        "GITHUB_PRIVATE_KEY": app_key().private_pem,
        "GITHUB_WEBHOOK_SECRET": SECRET,
        "GITHUB_API_URL": api_url,
        "MODEL_ASSIGNER_STATE": str(state),
        "MODEL_ASSIGNER_CONFIG": str(seed_strategy_config()),
        **FAST_QUEUE,
        **shifted_clock_env(),
    }
    return subprocess.run([str(VENV_BIN / "model-assigner"), "plan", REPO, "--apply", *extra],
                          env=env, capture_output=True, text=True, timeout=120)


def test_plan_apply_queues_waits_out_a_rate_limit_and_reports_progress(
    github: tuple[GitHubStandIn, StandInServer], tmp_path: Path
) -> None:
    standin, stand_in_server = github
    for number in ISSUES:  # opened while the webhook was off: nobody decided them
        new_issue(standin, number, ["P0", "backend"], SMALL_BACKEND)
    new_issue(standin, 9, ["P2", "model:opus-4.6"], "a person's choice")
    # GitHub refuses the first comment: a secondary limit, retry-after 2 s.
    standin.inject_fault(f"/repos/{REPO}/issues/*/comments", "secondary_rate_limit", 1,
                         method="POST", retry_after=2)
    server = start_server(tmp_path, app_env(github), "app")
    try:
        done = plan_apply(tmp_path, stand_in_server.url, server.state)
        assert done.returncode == 0, done.stderr
        server.drained()
        first = server.store()
        # Again, without waiting: the server's workers write the new plan.
        queued = plan_apply(tmp_path, stand_in_server.url, server.state, "--no-wait")
        assert queued.returncode == 0, queued.stderr
        server.drained()
        second = server.store()
    finally:
        stop_server(server)

    err = done.stderr
    assert f"plan --apply: {len(ISSUES)} queued: 0 decided" in err
    assert "waiting on a rate limit (until" in err  # it said so, and waited
    assert f"plan --apply: done: {len(ISSUES)} of {len(ISSUES)} decided" in err
    assert "Traceback" not in err
    assert f"{len(ISSUES)} queued for the server's workers" in queued.stderr
    for store in (first, second):
        for number in ISSUES:
            assigned_everywhere(standin, store, number)
        charged_once(store)
    assert bot_comments(standin, 9) == [] and model_labels(standin, 9) == ["model:opus-4.6"]
    refused = [c for c in standin.calls("POST") if c.fault == "secondary_rate_limit"]
    assert len(refused) == 1  # no write was sent while the installation was limited
