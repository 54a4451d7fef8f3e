"""Hostile input, round 2 (issue 12), through the real server: the Procfile's
gunicorn (2 workers x 4 threads) on loopback, GitHub played by the stand-in.

Each test here failed on the code before issue 12: stalled clients held every
thread, an issue's 65 KB body grew the shared store without bound, a
repository's config spent the shared budget, a stale close released a live
reservation."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import requests

from bench.github_standin import GitHubStandIn, StandInServer
from model_assigner.bot.store.state import MAX_DEPENDENCIES
from tests.bot.support import (
    API,
    INSTALLATION,
    PERSON,
    REPO,
    webhook,
)
from tests.e2e.support import (
    Server,
    app_env,
    event,
    new_issue,
    running_standin,
    start_server,
    stop_server,
)

READ_SECONDS = 2  # MODEL_ASSIGNER_READ_TIMEOUT for these servers (the default is 5)


@pytest.fixture(scope="module")
def github() -> Iterator[tuple[GitHubStandIn, StandInServer]]:
    """conftest.py's stand-in, plus a bystander and two hostile repository configs."""
    with running_standin("octo/bystander") as (standin, server):
        huge = "[1000000000000, 1000000000000]"
        standin.add_repo("octo/costly", installation_id=INSTALLATION, files=20,
                         default_branch="master", config_text=(
                             f"scoring:\n  token_estimates: {{simple: {huge}, moderate: {huge}, "
                             f"complex: {huge}, highly_complex: {huge}}}\n"))
        words = ", ".join(f"w{n:05d}" for n in range(4000))
        standin.add_repo("octo/wordy", installation_id=INSTALLATION, files=20,
                         default_branch="master",
                         config_text=f"scoring:\n  complex_keywords: [{words}]\n")
        yield standin, server


@pytest.fixture(scope="module")
def server(
    github: tuple[GitHubStandIn, StandInServer], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    tmp = tmp_path_factory.mktemp("e2e-hostile")
    running = start_server(
        tmp,
        app_env(github, MODEL_ASSIGNER_READ_TIMEOUT=str(READ_SECONDS)),
        "app",
    )
    try:
        yield running
    finally:
        stop_server(running)


def stalled_clients(url: str, count: int, path: Path | None = None) -> list[socket.socket]:
    """Unauthenticated clients that announce a 1 MB body, send 5 bytes, and stall."""
    host, port = url.removeprefix("http://").split(":")
    clients = []
    for _ in range(count):
        sock = socket.create_connection((host, int(port)), timeout=5)
        sock.sendall(
            b"POST /webhook HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"X-GitHub-Event: issues\r\nContent-Length: 1000000\r\n\r\n{\"a\":"
        )
        clients.append(sock)
    return clients


# -- 2: slow clients ------------------------------------------------------------------------


def test_stalled_clients_do_not_stop_healthz_or_signed_deliveries(
    server: Server, standin: GitHubStandIn
) -> None:
    clients = stalled_clients(server.url, 12)  # more than the 2 x 4 threads
    try:
        time.sleep(0.5)  # each is in a thread, reading its body
        started = time.monotonic()
        health = requests.get(f"{server.url}/healthz", timeout=4 * READ_SECONDS + 5)
        assert health.status_code == 200
        new_issue(standin, 21, ["P0", "backend"], "Estimated files: 3\nEstimated LOC: 150")
        response = server.deliver(event(standin, "opened", 21))
        assert response.status_code == 200, response.text
        assert response.json()["status"] == "assigned"
        assert time.monotonic() - started < 4 * READ_SECONDS + 5
        # The stalled clients got 408 (or were closed), none kept a thread.
        for sock in clients:
            sock.settimeout(READ_SECONDS + 5)
            try:
                answer = sock.recv(200)
            except OSError:
                answer = b""
            assert answer == b"" or answer.startswith(b"HTTP/1.1 408"), answer
    finally:
        for sock in clients:
            sock.close()


def test_a_client_trickling_its_body_is_cut_off(server: Server) -> None:
    """One byte a second never trips a per-read timeout; the request's deadline
    is for the whole request."""
    [sock] = stalled_clients(server.url, 1)
    try:
        started = time.monotonic()
        answer = b""
        while time.monotonic() - started < 4 * READ_SECONDS:
            try:
                sock.sendall(b" ")
            except OSError:
                break
            sock.settimeout(1)
            try:
                answer = sock.recv(200)
            except TimeoutError:
                continue
            except OSError:
                break
            break
        assert answer == b"" or answer.startswith(b"HTTP/1.1 408"), answer
        assert time.monotonic() - started < 4 * READ_SECONDS
    finally:
        sock.close()


# -- 1: what issues can put in the shared store -------------------------------------------------


def test_issues_naming_thousands_of_dependencies_keep_the_store_small(
    server: Server, standin: GitHubStandIn
) -> None:
    body = ("Depends on " + ", ".join(f"#{n}" for n in range(1, 20_000)))[:65_536]
    for number in range(31, 36):
        new_issue(standin, number, ["P2", "backend"], body)
        response = server.deliver(event(standin, "opened", number))
        assert response.status_code == 200, response.text
    deps = server.store()["dependencies"]
    assert all(len(deps[f"{REPO}#{n}"]) == MAX_DEPENDENCIES for n in range(31, 36))
    assert server.state.stat().st_size < 64_000  # five 65 KB bodies, a few KB of store
    # A bystander in another repository is decided as usual.
    standin.add_issue("octo/bystander", 1, body="Estimated files: 3", labels=["P1"])
    payload = webhook("issues.opened")
    payload["repository"] = {**payload["repository"], "full_name": "octo/bystander",
                             "default_branch": "master"}
    payload["issue"] = standin.issue_json("octo/bystander", 1, API)
    response = server.deliver(payload)
    assert response.status_code == 200, response.text


# -- 3 and 4: a repository's config ---------------------------------------------------------------


def repo_event(standin: GitHubStandIn, repo: str, number: int, action: str = "opened",
               label: str | None = None) -> dict[str, Any]:
    payload = webhook("issues.labeled" if label else "issues.opened", sender=PERSON, label=label)
    payload["action"] = action
    payload["repository"] = {**payload["repository"], "full_name": repo,
                             "default_branch": "master"}
    payload["issue"] = standin.issue_json(repo, number, API)
    return payload


def test_a_repository_config_cannot_move_the_shared_budget(
    server: Server, standin: GitHubStandIn
) -> None:
    standin.add_issue("octo/costly", 1, labels=["P0", "backend"],
                      body="Estimated files: 3\nEstimated LOC: 150")
    standin.label_issue("octo/costly", 1, "model:opus-4.6")
    response = server.deliver(repo_event(standin, "octo/costly", 1, "labeled", "model:opus-4.6"))
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["status"] == "override" and answer["tokens"] == 31_000  # the operator's
    assert "scoring.token_estimates" in answer["config_refused"]
    held = server.store()["reservations"]["octo/costly#1"]
    assert held["payment"]["cost_usd"] < 5  # not $30,000,000


def test_a_repository_config_cannot_buy_cpu(server: Server, standin: GitHubStandIn) -> None:
    standin.add_issue("octo/wordy", 1, labels=["P0", "backend"],
                      body="Estimated files: 3\n" + "w03999 " * 9000)
    response = server.deliver(repo_event(standin, "octo/wordy", 1))
    assert response.status_code == 200, response.text
    assert "complex_keywords" in response.json()["config_problem"]


# -- 5: a stale close -------------------------------------------------------------------------


def test_a_close_delivered_after_the_reopen_keeps_the_reservation(
    server: Server, standin: GitHubStandIn
) -> None:
    new_issue(standin, 51, ["P0", "backend"], "Estimated files: 3\nEstimated LOC: 150")
    assert server.deliver(event(standin, "opened", 51)).json()["status"] == "assigned"
    time.sleep(1.1)  # GitHub's times have whole seconds
    standin.close_issue(REPO, 51, reason="not_planned")
    closed = event(standin, "opened", 51)
    closed["action"] = "closed"
    time.sleep(1.1)
    with standin.lock:  # reopened on GitHub
        issue = standin.issue(REPO, 51)
        issue.state, issue.state_reason = "open", "reopened"
        issue.updated_at = issue.updated_at + timedelta(seconds=2)
    reopened = event(standin, "opened", 51)
    reopened["action"] = "reopened"
    assert server.deliver(reopened).json()["status"] in ("assigned", "duplicate")
    held = server.store()["reservations"][f"{REPO}#51"]
    for _ in range(2):  # late, then replayed under a new delivery id
        response = server.deliver(closed)
        assert response.json()["status"] == "ignored", response.text
    assert server.store()["reservations"][f"{REPO}#51"] == held


# -- 7 and 13: the store folder removed; metrics files that cannot be written ------------------


def test_a_metrics_write_that_fails_does_not_fail_the_delivery(
    github: tuple[GitHubStandIn, StandInServer], tmp_path: Path
) -> None:
    """The workers' metrics files cannot be written (their folder is gone
    before the workers first count anything): deliveries are still decided,
    labels and comments written once, the store holds the reservations."""
    import shutil

    standin = github[0]
    running = start_server(tmp_path, app_env(github), "nometrics")
    try:
        shutil.rmtree(running.state.parent / "metrics")
        for number in (61, 62, 63):
            new_issue(standin, number, ["P0", "backend"], "Estimated files: 3\nEstimated LOC: 150")
            response = running.deliver(event(standin, "opened", number))
            assert response.status_code == 200, response.text + running.log_text()
            assert response.json()["status"] == "assigned"
            assert f"{REPO}#{number}" in running.store()["reservations"]
            assert len(standin.comments_of(REPO, number)) == 1
        assert "metrics not recorded" in running.log_text()
    finally:
        stop_server(running)


def test_start_up_under_a_file_size_limit_is_one_line(tmp_path: Path) -> None:
    import subprocess

    from tests.e2e.support import VENV_BIN, loopback_command

    state = tmp_path / "data" / "state.json"
    env = {
        "PATH": f"{VENV_BIN}:/usr/bin:/bin", "HOME": str(tmp_path), "LANG": "C.UTF-8",
        "PORT": "1", "MODEL_ASSIGNER_STATE": str(state), "PYTHONUNBUFFERED": "1",
        "PYTHONDONTWRITEBYTECODE": "1",
    }
    done = subprocess.run(
        # 64 blocks of 512 bytes: the store fits, a 64 KiB metrics file does not.
        ["sh", "-c", "ulimit -f 64; exec " + loopback_command()],
        cwd=Path(__file__).resolve().parents[2], env=env, capture_output=True, timeout=60,
    )
    out = (done.stdout + done.stderr).decode(errors="replace")
    assert done.returncode != 0
    assert "model-assigner: cannot start: metrics folder" in out, out
    assert "Traceback" not in out, out


def test_a_store_folder_removed_while_running_is_noticed_not_re_seeded(
    github: tuple[GitHubStandIn, StandInServer], tmp_path: Path
) -> None:
    import shutil

    standin = github[0]
    running = start_server(tmp_path, app_env(github), "vanish")
    try:
        new_issue(standin, 71, ["P0", "backend"], "Estimated files: 3\nEstimated LOC: 150")
        assert running.deliver(event(standin, "opened", 71)).status_code == 200
        shutil.rmtree(running.state.parent)
        for _ in range(3):  # both workers
            assert requests.get(f"{running.url}/healthz", timeout=10).status_code == 503
            assert requests.get(f"{running.url}/metrics", timeout=10).status_code == 503
        new_issue(standin, 72, ["P0", "backend"], "Estimated files: 3\nEstimated LOC: 150")
        response = running.deliver(event(standin, "opened", 72))
        assert response.status_code == 503, response.text
        assert not running.state.exists()  # no fresh store invented
    finally:
        stop_server(running)


# -- 16: who may choose a model --------------------------------------------------------------


def test_a_read_only_persons_model_label_is_not_a_choice(
    server: Server, standin: GitHubStandIn
) -> None:
    new_issue(standin, 81, ["P2", "backend"], "Estimated files: 3\nEstimated LOC: 150")
    standin.set_role(REPO, "reader", "read")
    standin.label_issue(REPO, 81, "model:opus-4.6")
    response = server.deliver(event(standin, "labeled", 81, sender="reader",
                                    label="model:opus-4.6"))
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["status"] != "override" and "override_refused" in answer
    assert "model:opus-4.6" not in standin.labels_of(REPO, 81)  # taken off, not charged
    held = server.store()["reservations"].get(f"{REPO}#81")
    assert held is None or held["model"] != "opus-4.6"
    asked = standin.calls("GET", f"/repos/{REPO}/collaborators/reader/permission")
    assert asked
