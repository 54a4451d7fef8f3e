"""``model-assigner serve`` and ``send-sample`` as a new user meets them.

A real server (the Procfile's gunicorn command) on a free loopback port: in
dry-run it listens on 127.0.0.1 only, ``send-sample`` finds it through PORT,
and a second ``serve`` on the same port says so in one line.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from model_assigner.bot.cli.server import serve_host
from tests.bot.support import app_key

BIN = Path(sys.executable).parent


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _clean_env(tmp_path: Path, port: int) -> dict[str, str]:
    env = {
        key: value for key, value in os.environ.items()
        if not key.startswith(("GITHUB_", "MODEL_ASSIGNER_", "PROMETHEUS_"))
    }
    env.update(PORT=str(port), WEB_CONCURRENCY="1",
               MODEL_ASSIGNER_STATE=str(tmp_path / "state.json"))
    return env


def _command(*args: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(BIN / "model-assigner"), *args], env=env, cwd=cwd,
                          capture_output=True, text=True, timeout=60)


@pytest.fixture
def dry_run_server(tmp_path: Path) -> Iterator[tuple[dict[str, str], Path]]:
    port = _free_port()
    env = _clean_env(tmp_path, port)
    log = tmp_path / "serve.log"
    with log.open("wb") as out:
        process = subprocess.Popen([str(BIN / "model-assigner"), "serve"], env=env, cwd=tmp_path,
                                   stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2):
                    break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"serve did not start: {log.read_text()[-2000:]}")
                time.sleep(0.2)
        yield env, log
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def test_dry_run_listens_on_loopback_and_send_sample_follows_port(
    dry_run_server: tuple[dict[str, str], Path], tmp_path: Path
) -> None:
    env, log = dry_run_server
    assert f"Listening at: http://127.0.0.1:{env['PORT']}" in log.read_text()
    sample = _command("send-sample", env=env, cwd=tmp_path)
    assert sample.returncode == 0, sample.stdout + sample.stderr
    # Acknowledged, then decided by the server's queue workers, which
    # send-sample waits for.
    assert sample.stdout.startswith("HTTP 202")
    assert "decided:" in sample.stdout and "comment it would write" in sample.stdout


def test_a_second_serve_on_a_busy_port_says_so_in_one_line(
    dry_run_server: tuple[dict[str, str], Path], tmp_path: Path
) -> None:
    env, _ = dry_run_server
    second = _command("serve", env=env, cwd=tmp_path)
    assert second.returncode == 2
    assert second.stderr.count("\n") == 1
    assert f"127.0.0.1:{env['PORT']} is already in use" in second.stderr
    assert "Traceback" not in second.stderr


def test_send_sample_says_where_it_looked(tmp_path: Path) -> None:
    port = _free_port()  # nothing listens there
    result = _command("send-sample", env=_clean_env(tmp_path, port), cwd=tmp_path)
    assert result.returncode == 2
    assert f"http://127.0.0.1:{port}/webhook: cannot connect" in result.stderr


def test_the_host_is_chosen_by_flag_setting_or_mode() -> None:
    def host(flag: str | None, **env: str) -> str:
        return serve_host(argparse.Namespace(host=flag), env)

    assert host(None) == "127.0.0.1"  # dry-run: signatures may go unchecked
    assert host("0.0.0.0") == "0.0.0.0"
    assert host("::1") == "::1"
    credentials = {"GITHUB_APP_ID": "1", "GITHUB_PRIVATE_KEY": app_key().private_pem,
                   "GITHUB_WEBHOOK_SECRET": "s"}
    assert host(None, **credentials) == "0.0.0.0"  # a container's every interface
