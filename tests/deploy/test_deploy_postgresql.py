"""The PostgreSQL deploy files run, as far as this machine allows: no Docker
daemon and no Kubernetes cluster here, so the image's command is run as the
files configure it, for real, against the local PostgreSQL (127.0.0.1).

- deploy/docker-compose.yml: the app service's environment and the image's
  command (deploy/Dockerfile: its ENV and CMD), the compose file's database
  URL pointed at the test server; /healthz (the Dockerfile's HEALTHCHECK)
  answers 200, a signed delivery is acknowledged, and with the database
  gone /healthz and deliveries fail (503) until it is back.
- deploy/kubernetes/postgresql/: the Deployment's env (the connection string
  from the Secret's key), its named port and probes, checked against what the
  app reads, then run: the readiness probe's path answers 200 on the probe's
  port, fails while the database is unreachable and recovers without a
  restart; the liveness probe (a TCP connect) keeps passing meanwhile.
"""

from __future__ import annotations

import os
import re
import shlex
import signal
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
import requests
import yaml
from psycopg.conninfo import conninfo_to_dict

from tests.bot.support import SECRET, delivery_headers, encode, webhook
from tests.deploy.support import settings_read_by_code
from tests.e2e.support import VENV_BIN, free_port
from tests.pg_support import CuttableProxy

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
KUBE = DEPLOY / "kubernetes" / "postgresql"
READY = 30.0


def dockerfile() -> tuple[dict[str, str], str]:
    """The image's ENV (name -> value) and its CMD (a shell command)."""
    text = (DEPLOY / "Dockerfile").read_text()
    joined = re.sub(r"\\\n\s*", " ", text)
    env: dict[str, str] = {}
    for line in joined.splitlines():
        if line.startswith("ENV "):
            for item in shlex.split(line.removeprefix("ENV ")):
                name, _, value = item.partition("=")
                env[name] = value
    (cmd,) = [line for line in joined.splitlines() if line.startswith("CMD ")]
    args = yaml.safe_load(cmd.removeprefix("CMD "))  # a JSON array
    assert args[:2] == ["sh", "-c"], "the image's command runs through a shell"
    return env, str(args[2])


def kube(name: str) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all((KUBE / name).read_text()) if doc]


class Running:
    def __init__(self, process: subprocess.Popen[bytes], url: str, log: Path) -> None:
        self.process, self.url, self.log = process, url, log

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=5)


def run_image(command: str, env: dict[str, str], tmp: Path, port: int) -> Running:
    """The image's command on this machine: bound to loopback (nothing here
    listens beyond it), in the source tree where the image has /app."""
    assert "--bind 0.0.0.0:${PORT" in command
    log = tmp / f"server-{port}.log"
    full = {
        **env,
        "PATH": f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '/usr/bin:/bin')}",
        "HOME": str(tmp),
        "LANG": "C.UTF-8",
        "PORT": str(port),
        "MODEL_ASSIGNER_CATCHUP_SECONDS": "0",
    }
    with log.open("wb") as out:
        process = subprocess.Popen(
            ["sh", "-c", command.replace("--bind 0.0.0.0:", "--bind 127.0.0.1:")],
            cwd=ROOT, env=full, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )
    return Running(process, f"http://127.0.0.1:{port}", log)


def status(url: str) -> int | None:
    try:
        return requests.get(url, timeout=3).status_code
    except requests.RequestException:
        return None


def wait_for(url: str, wanted: int, running: Running, seconds: float = READY) -> None:
    deadline = time.monotonic() + seconds
    last: int | None = None
    while time.monotonic() < deadline:
        assert running.process.poll() is None, running.log.read_text()
        last = status(url)
        if last == wanted:
            return
        time.sleep(0.2)
    raise AssertionError(f"{url}: {last}, not {wanted}, after {seconds}s:\n"
                         f"{running.log.read_text()[-3000:]}")


def deliver(running: Running) -> int:
    body = encode(webhook("issues.opened", number=int(uuid.uuid4().int % 100_000) + 1))
    headers = delivery_headers(body)
    try:
        return requests.post(f"{running.url}/webhook", data=body, headers=headers,
                             timeout=10).status_code
    except requests.RequestException:
        return 0


@pytest.fixture
def proxy() -> Iterator[CuttableProxy]:
    relay = CuttableProxy()
    yield relay
    relay.cut()


# Where the test server is, not options of the connection: replaced.
SERVER_PARTS = frozenset({"host", "hostaddr", "port", "user", "password", "dbname"})
# What asks for TLS, which the test server does not offer: dropped.
TLS_ONLY = frozenset({"sslrootcert", "sslcert", "sslkey", "sslcrl", "sslpassword"})
NEEDS_TLS = frozenset({"require", "verify-ca", "verify-full"})


def as_the_test_server(url: str, test_url: str, proxy: CuttableProxy) -> str:
    """The deploy file's connection string with the test server (through the
    cuttable proxy) in place of its host, user, password and database; its
    other options kept, but not those that need TLS the test server lacks
    (``sslmode=require`` and stricter, client certificates)."""
    deployed = conninfo_to_dict(url)
    assert deployed["host"]
    options = {
        key: str(value) for key, value in deployed.items()
        if key not in SERVER_PARTS | TLS_ONLY
        and not (key == "sslmode" and value in NEEDS_TLS)
    }
    served = proxy.url(test_url)
    return f"{served}?{urlencode(options)}" if options else served


def test_the_deploy_urls_options_are_kept_but_tls(pg_url: str, proxy: CuttableProxy) -> None:
    url = ("postgresql://u:p@db.example.com:5432/app?sslmode=require&connect_timeout=7"
           "&application_name=model-assigner")
    parts = conninfo_to_dict(as_the_test_server(url, pg_url, proxy))
    assert (parts["host"], int(parts["port"])) == ("127.0.0.1", proxy.port)
    assert parts["connect_timeout"] == "7" and parts["application_name"] == "model-assigner"
    assert "sslmode" not in parts
    assert parts["dbname"] == conninfo_to_dict(pg_url)["dbname"]


def test_the_compose_app_runs_on_postgresql_and_fails_safe_while_it_is_down(
    pg_url: str, proxy: CuttableProxy, tmp_path: Path
) -> None:
    compose = yaml.safe_load((DEPLOY / "docker-compose.yml").read_text())
    app, db = compose["services"]["app"], compose["services"]["db"]
    image_env, command = dockerfile()
    env = {**image_env, **{k: str(v) for k, v in app["environment"].items()}}

    # The app's URL names the db service, with the db service's credentials.
    parts = conninfo_to_dict(env["MODEL_ASSIGNER_STATE"])
    assert env["MODEL_ASSIGNER_STATE"].startswith("postgresql://")
    assert parts["host"] == "db" and str(parts.get("port")) == "5432"
    assert (parts["user"], parts["password"], parts["dbname"]) == (
        db["environment"]["POSTGRES_USER"], db["environment"]["POSTGRES_PASSWORD"],
        db["environment"]["POSTGRES_DB"])
    assert app["depends_on"]["db"]["condition"] == "service_healthy"
    # Published on the port the app listens on.
    assert all(str(p).endswith(f":{env['PORT']}") for p in app["ports"])
    # The image's own health check asks /healthz.
    assert "/healthz" in (DEPLOY / "Dockerfile").read_text().split("HEALTHCHECK", 1)[1]
    assert set(env) - {"PYTHONDONTWRITEBYTECODE", "PYTHONUNBUFFERED", "PORT",
                       "WEB_CONCURRENCY"} <= settings_read_by_code()

    env["MODEL_ASSIGNER_STATE"] = as_the_test_server(env["MODEL_ASSIGNER_STATE"], pg_url, proxy)
    env["MODEL_ASSIGNER_CONFIG"] = str(ROOT / "config")  # the image's /app/config
    env["GITHUB_WEBHOOK_SECRET"] = SECRET  # deploy/.env's, when there is one
    running = run_image(command, env, tmp_path, free_port())
    try:
        wait_for(f"{running.url}/healthz", 200, running)
        assert deliver(running) == 202

        proxy.cut()
        wait_for(f"{running.url}/healthz", 503, running, seconds=10)
        assert deliver(running) == 503, "refused before anything is acknowledged"

        proxy.restore()
        wait_for(f"{running.url}/healthz", 200, running)
        assert deliver(running) == 202, "back without a restart"
        assert running.process.poll() is None
    finally:
        running.stop()


def test_the_kubernetes_deployment_runs_as_its_probes_expect(
    pg_url: str, proxy: CuttableProxy, tmp_path: Path
) -> None:
    (deployment,) = kube("deployment.yaml")
    (secret,) = kube("secret.yaml.example")
    (pdb,) = kube("pdb.yaml")
    spec = deployment["spec"]
    (container,) = spec["template"]["spec"]["containers"]
    assert spec["replicas"] >= 2 and spec["strategy"]["type"] == "RollingUpdate"
    assert spec["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    assert pdb["spec"]["selector"] == spec["selector"]
    assert spec["selector"]["matchLabels"].items() <= (
        spec["template"]["metadata"]["labels"].items())
    assert 0 < pdb["spec"]["minAvailable"] < spec["replicas"]

    # Every variable the Deployment sets is one the app (or the image's
    # command) reads; the connection string comes from the Secret's key.
    image_env, command = dockerfile()
    read = settings_read_by_code() | set(re.findall(r"\$\{?([A-Z][A-Z0-9_]+)", command))
    names = {item["name"] for item in container["env"]}
    assert names <= read, f"set but never read: {sorted(names - read)}"
    (state,) = [item for item in container["env"] if item["name"] == "MODEL_ASSIGNER_STATE"]
    ref = state["valueFrom"]["secretKeyRef"]
    assert ref["name"] == secret["metadata"]["name"]
    url = secret["stringData"][ref["key"]]
    assert url.startswith("postgresql://") and conninfo_to_dict(url)["host"]

    # The named port is the one the app listens on; readiness is /healthz
    # there; liveness is not (a database outage must not restart every pod).
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    env = {**image_env, **{i["name"]: i["value"] for i in container["env"] if "value" in i}}
    readiness, liveness = container["readinessProbe"], container["livenessProbe"]
    assert ports[readiness["httpGet"]["port"]] == int(env["PORT"])
    assert "httpGet" not in liveness
    assert ports[liveness["tcpSocket"]["port"]] == int(env["PORT"])
    # Readiness fails within GitHub's patience: probe timeout under the
    # app's own 2 s health wait plus margin.
    assert readiness["timeoutSeconds"] >= 3

    # Run it: the Secret's URL is the test server's (through the proxy).
    env["MODEL_ASSIGNER_STATE"] = as_the_test_server(url, pg_url, proxy)
    env["MODEL_ASSIGNER_CONFIG"] = str(ROOT / "config")
    port = free_port()
    running = run_image(command, env, tmp_path, port)
    probe = f"{running.url}{readiness['httpGet']['path']}"
    try:
        wait_for(probe, 200, running)
        proxy.cut()
        # Not ready within periodSeconds x failureThreshold of the outage.
        budget = readiness["periodSeconds"] * readiness["failureThreshold"]
        began = time.monotonic()
        wait_for(probe, 503, running, seconds=budget)
        assert time.monotonic() - began <= budget
        # Alive meanwhile: the liveness probe's TCP connect succeeds.
        import socket

        with socket.create_connection(("127.0.0.1", port), timeout=3):
            pass
        proxy.restore()
        wait_for(probe, 200, running)
        assert running.process.poll() is None, "ready again without a restart"
    finally:
        running.stop()
