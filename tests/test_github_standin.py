"""The GitHub stand-in itself: authentication, fault injection, the shapes
the bot relies on, and the process mode a benchmark can use."""

from __future__ import annotations

import base64
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import jwt
import pytest
import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from bench.github_standin import CONFIG_PATH, GitHubStandIn, StandInServer
from tests.bot.support import APP_ID, app_key

ROOT = Path(__file__).resolve().parents[1]
REPO = "o/r"


def app_jwt(private_pem: str | None = None, app_id: int = APP_ID, lifetime: int = 300) -> str:
    now = int(time.time())
    claims = {"iat": now - 60, "exp": now + lifetime, "iss": str(app_id)}
    return jwt.encode(claims, private_pem or app_key().private_pem, algorithm="RS256")


@pytest.fixture
def gh() -> Iterator[tuple[GitHubStandIn, str]]:
    standin = GitHubStandIn(APP_ID, app_key().public_pem)
    standin.add_repo(REPO, installation_id=1, files=3, config_text="labels: {}\n")
    standin.add_repo("other/r", installation_id=2)
    standin.add_issue(REPO, 1, title="t", labels=["P1"], milestone_due_on="2026-12-24T00:00:00Z")
    with StandInServer(standin) as server:
        yield standin, server.url


def token(url: str, installation: int = 1) -> dict[str, str]:
    answer = requests.post(
        f"{url}/app/installations/{installation}/access_tokens",
        json={"permissions": {}},
        headers={"Authorization": f"Bearer {app_jwt()}"},
        timeout=5,
    )
    assert answer.status_code == 201
    return {"Authorization": f"token {answer.json()['token']}"}


def test_app_endpoints_need_a_jwt_signed_with_the_apps_key(gh: tuple[GitHubStandIn, str]) -> None:
    standin, url = gh
    assert requests.get(f"{url}/app", headers={"Authorization": f"Bearer {app_jwt()}"},
                        timeout=5).json()["slug"] == standin.slug
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()).decode()
    for header in (f"Bearer {app_jwt(other)}", f"Bearer {app_jwt(app_id=1)}",
                   f"Bearer {app_jwt(lifetime=3600)}", "Bearer nonsense", ""):
        assert requests.get(f"{url}/app", headers={"Authorization": header},
                            timeout=5).status_code == 401
    assert requests.get(f"{url}/app", headers=token(url), timeout=5).status_code == 401
    assert requests.post(f"{url}/app/installations/9/access_tokens",
                         headers={"Authorization": f"Bearer {app_jwt()}"},
                         timeout=5).status_code == 404


def test_repository_endpoints_need_the_installations_token(
    gh: tuple[GitHubStandIn, str],
) -> None:
    _, url = gh
    issue = f"{url}/repos/{REPO}/issues/1"
    assert requests.get(issue, timeout=5).status_code == 401
    assert requests.get(issue, headers={"Authorization": f"Bearer {app_jwt()}"},
                        timeout=5).status_code == 401
    assert requests.get(issue, headers=token(url, 2), timeout=5).status_code == 404
    answer = requests.get(issue, headers=token(url), timeout=5).json()
    assert answer["url"] == issue and "pull_request" not in answer
    assert [label["name"] for label in answer["labels"]] == ["P1"]
    assert answer["milestone"]["due_on"] == "2026-12-24T00:00:00Z"


def test_an_expired_token_is_refused() -> None:
    standin = GitHubStandIn(APP_ID, app_key().public_pem, token_ttl=timedelta(seconds=-1))
    standin.add_repo(REPO)
    standin.add_issue(REPO, 1)
    with StandInServer(standin) as server:
        assert requests.get(f"{server.url}/repos/{REPO}/issues/1", headers=token(server.url),
                            timeout=5).status_code == 401


def test_faults_hit_the_next_matching_requests_only(gh: tuple[GitHubStandIn, str]) -> None:
    standin, url = gh
    auth = token(url)
    standin.inject_fault(f"/repos/{REPO}/issues/*", "502", times=2, method="GET")
    standin.inject_fault(f"/repos/{REPO}/labels", "secondary_rate_limit", retry_after=7)
    statuses = [requests.get(f"{url}/repos/{REPO}/issues/1", headers=auth, timeout=5).status_code
                for _ in range(3)]
    assert statuses == [502, 502, 200]
    limited = requests.post(f"{url}/repos/{REPO}/labels", json={"name": "x", "color": "ffffff"},
                            headers=auth, timeout=5)
    assert limited.status_code == 403 and limited.headers["Retry-After"] == "7"
    assert "secondary rate limit" in limited.json()["message"]
    assert [r.fault for r in standin.calls(path=f"/repos/{REPO}/*")] == [
        "502", "502", None, "secondary_rate_limit"
    ]


def test_labels_comments_tree_and_contents(gh: tuple[GitHubStandIn, str]) -> None:
    standin, url = gh
    auth = token(url)
    r = f"{url}/repos/{REPO}"
    made = requests.post(f"{r}/labels", json={"name": "model:x", "color": "6f42c1"},
                         headers=auth, timeout=5)
    assert made.status_code == 201
    again = requests.post(f"{r}/labels", json={"name": "Model:X"}, headers=auth, timeout=5)
    assert again.status_code == 422 and again.json()["errors"][0]["code"] == "already_exists"
    added = requests.post(f"{r}/issues/1/labels", json={"labels": ["model:x", "new/one"]},
                          headers=auth, timeout=5)
    assert [label["name"] for label in added.json()] == ["P1", "model:x", "new/one"]
    assert requests.delete(f"{r}/issues/1/labels/new%2Fone", headers=auth,
                           timeout=5).status_code == 200
    assert requests.delete(f"{r}/issues/1/labels/nope", headers=auth, timeout=5).status_code == 404
    assert standin.labels_of(REPO, 1) == ["P1", "model:x"]

    for i in range(5):
        standin.add_comment(REPO, 1, f"c{i}")
    page = requests.get(f"{r}/issues/1/comments?per_page=2", headers=auth, timeout=5)
    assert [c["body"] for c in page.json()] == ["c0", "c1"]
    assert 'rel="next"' in page.headers["Link"]
    assert requests.patch(f"{r}/issues/comments/{page.json()[0]['id']}", json={"body": "x"},
                          headers=auth, timeout=5).status_code == 403  # a person's comment

    branch = requests.get(f"{r}/branches/main", headers=auth, timeout=5).json()
    tree_sha = branch["commit"]["commit"]["tree"]["sha"]
    tree = requests.get(f"{r}/git/trees/{tree_sha}?recursive=1", headers=auth, timeout=5).json()
    assert sum(1 for e in tree["tree"] if e["type"] == "blob") == 4  # 3 files + the config
    content = requests.get(f"{r}/contents/{CONFIG_PATH}?ref={branch['commit']['sha']}",
                           headers=auth, timeout=5).json()
    assert base64.b64decode(content["content"]).decode() == "labels: {}\n"
    assert requests.get(f"{r}/contents/{CONFIG_PATH}?ref=0000", headers=auth,
                        timeout=5).status_code == 404
    standin.set_config(REPO, None)
    head = requests.get(f"{r}/branches/main", headers=auth, timeout=5).json()["commit"]["sha"]
    assert head != branch["commit"]["sha"]
    assert requests.get(f"{r}/contents/{CONFIG_PATH}?ref={head}", headers=auth,
                        timeout=5).status_code == 404


def test_the_standin_runs_as_its_own_process(tmp_path: Path) -> None:
    public = tmp_path / "app.pub"
    public.write_text(app_key().public_pem)
    process = subprocess.Popen(
        [sys.executable, "-m", "bench.github_standin", "--app-id", str(APP_ID),
         "--public-key-file", str(public), "--repo", REPO],
        cwd=ROOT, stdout=subprocess.PIPE, text=True,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        assert line.startswith("github-standin listening on http://127.0.0.1:")
        url = line.split()[-1]
        control = f"{url}/_standin"
        assert requests.post(f"{control}/issues", json={"repo": REPO, "number": 3,
                                                         "labels": ["P0"]},
                             timeout=5).status_code == 201
        requests.post(f"{control}/faults", json={"path": "/repos/*", "kind": "503"}, timeout=5)
        auth = token(url)
        assert requests.get(f"{url}/repos/{REPO}/issues/3", headers=auth,
                            timeout=5).status_code == 503
        assert requests.get(f"{url}/repos/{REPO}/issues/3", headers=auth,
                            timeout=5).status_code == 200
        seen = requests.get(f"{control}/requests", timeout=5).json()
        assert [(r["method"], r["status"]) for r in seen] == [
            ("POST", 201), ("GET", 503), ("GET", 200)
        ]
        state = requests.get(f"{control}/issues/{REPO}/3", timeout=5).json()
        assert [label["name"] for label in state["issue"]["labels"]] == ["P0"]
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_a_get_naming_its_etag_is_answered_304_and_costs_no_rate_limit(
    gh: tuple[GitHubStandIn, str],
) -> None:
    standin, url = gh
    standin.limit_requests(remaining=3, reset_in=3600)
    auth = token(url)
    first = requests.get(f"{url}/repos/{REPO}/branches/main", headers=auth, timeout=5)
    etag = first.headers["ETag"]
    assert first.status_code == 200 and etag.startswith('W/"')
    for _ in range(5):  # unchanged: 304, no body, and the limit's count stays
        again = requests.get(f"{url}/repos/{REPO}/branches/main",
                             headers={**auth, "If-None-Match": etag}, timeout=5)
        assert again.status_code == 304 and again.content == b""
    standin.set_config(REPO, "labels: {prefix: 'm:'}\n")  # a new commit: a new answer
    moved = requests.get(f"{url}/repos/{REPO}/branches/main",
                         headers={**auth, "If-None-Match": etag}, timeout=5)
    assert moved.status_code == 200 and moved.headers["ETag"] != etag
    assert standin.served(f"/repos/{REPO}/branches/*") == {200: 2, 304: 5}
    assert standin.refused == 0
