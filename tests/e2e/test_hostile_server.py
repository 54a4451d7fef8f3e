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
from pathlib import Path

import pytest
import requests

from tests.bot.support import APP_ID, INSTALLATION, REPO, SECRET, SLUG, app_key
from tests.e2e.test_server import Server, event, new_issue, start_server, stop_server
from tests.github_standin import GitHubStandIn, StandInServer

READ_SECONDS = 2  # MODEL_ASSIGNER_READ_TIMEOUT for these servers (the default is 5)


@pytest.fixture(scope="module")
def github() -> Iterator[tuple[GitHubStandIn, StandInServer]]:
    standin = GitHubStandIn(APP_ID, app_key().public_pem, slug=SLUG)
    standin.add_repo(REPO, installation_id=INSTALLATION, files=20, default_branch="master")
    standin.add_repo("octo/bystander", installation_id=INSTALLATION, files=20,
                     default_branch="master")
    server = StandInServer(standin).start()
    try:
        yield standin, server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def standin(github: tuple[GitHubStandIn, StandInServer]) -> GitHubStandIn:
    return github[0]


@pytest.fixture(scope="module")
def server(
    github: tuple[GitHubStandIn, StandInServer], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    tmp = tmp_path_factory.mktemp("e2e-hostile")
    running = start_server(
        tmp,
        {
            "GITHUB_APP_ID": str(APP_ID),
            "GITHUB_PRIVATE_KEY": app_key().private_pem,
            "GITHUB_WEBHOOK_SECRET": SECRET,
            "GITHUB_API_URL": github[1].url,
            "MODEL_ASSIGNER_READ_TIMEOUT": str(READ_SECONDS),
        },
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
