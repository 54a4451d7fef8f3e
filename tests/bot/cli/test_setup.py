"""The App manifest flow against GitHub's documented conversion answer."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest
import responses

from model_assigner.bot.github.manifest import api_url_for, new_app_url
from model_assigner.bot.settings import load_settings
from model_assigner.bot.web.setup_page import create_setup_app

FIXTURE = Path(__file__).resolve().parents[2] / "fixtures/github/rest-examples/apps"


def conversion_example() -> dict:  # type: ignore[type-arg]
    path = next(FIXTURE.glob("create-from-manifest*.json"))
    data: dict = json.loads(path.read_text())  # type: ignore[type-arg]
    return data


def test_api_url_for_github_and_enterprise() -> None:
    assert api_url_for("https://github.com") == "https://api.github.com"
    assert api_url_for("https://ghe.example.com/") == "https://ghe.example.com/api/v3"
    assert new_app_url("https://github.com", None) == "https://github.com/settings/apps/new"
    org_url = new_app_url("https://github.com", "acme")
    assert org_url.endswith("/organizations/acme/settings/apps/new")


@responses.activate
def test_manifest_flow_writes_owner_only_env(tmp_path: Path) -> None:
    env = tmp_path / ".env"
    app = create_setup_app(
        "https://github.com", "https://api.github.com", "https://bot.example.com/webhook", env, 3000
    )
    client = app.test_client()
    page = client.get("/").get_data(as_text=True)
    assert 'action="https://github.com/settings/apps/new?state=' in page
    state = page.split("?state=", 1)[1].split('"', 1)[0]
    manifest = json.loads(
        page.split('name="manifest" value="', 1)[1].split('"', 1)[0].replace("&quot;", '"')
    )
    assert manifest["hook_attributes"]["url"] == "https://bot.example.com/webhook"
    assert manifest["redirect_url"] == "http://localhost:3000/redirect"
    assert manifest["default_permissions"] == {
        "issues": "write", "metadata": "read", "contents": "read"
    }

    answer = conversion_example()
    responses.post(
        "https://api.github.com/app-manifests/abc123/conversions", json=answer, status=201
    )
    assert client.get(f"/redirect?code=abc123&state={state}").status_code == 200
    assert stat.S_IMODE(env.stat().st_mode) == 0o600

    values = {}
    for line in env.read_text().splitlines():
        if "=" in line and not line.startswith("#"):
            key, value = line.split("=", 1)
            values[key] = value.strip('"')
    settings = load_settings(values)
    assert settings.app_id == answer["id"]
    assert settings.webhook_secret == answer["webhook_secret"]
    assert settings.private_key is not None and "PRIVATE KEY" in settings.private_key


def test_redirect_with_wrong_state_is_refused(tmp_path: Path) -> None:
    app = create_setup_app("https://github.com", "https://api.github.com", "https://x/webhook",
                           tmp_path / ".env", 3000)
    assert app.test_client().get("/redirect?code=abc&state=forged").status_code == 400
    assert not (tmp_path / ".env").exists()


@responses.activate
@pytest.mark.parametrize("status", [404, 422])
def test_failed_exchange_writes_nothing(tmp_path: Path, status: int) -> None:
    env = tmp_path / ".env"
    app = create_setup_app("https://github.com", "https://api.github.com", "https://x/webhook",
                           env, 3000)
    client = app.test_client()
    page = client.get("/").get_data(as_text=True)
    state = page.split("?state=", 1)[1].split('"', 1)[0]
    responses.post("https://api.github.com/app-manifests/zzz/conversions",
                   json={"message": "Not Found"}, status=status)
    answer = client.get(f"/redirect?code=zzz&state={state}")
    assert answer.status_code == 502
    assert f"HTTP {status}" in answer.get_data(as_text=True)
    assert not env.exists()


@pytest.mark.parametrize(
    "url", ["not-a-url", "ftp://example.com/webhook", "https://", "example.com/webhook",
            "https://exa mple.com/webhook", "http://[::1/webhook"],
)
def test_setup_refuses_a_webhook_url_that_is_not_http(
    url: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from model_assigner.bot.cli import main
    from model_assigner.bot.cli import setup as setup_flow

    def started(_args: object) -> int:  # the local page would wait for a browser
        raise AssertionError(f"setup started with --webhook-url {url!r}")

    monkeypatch.setattr(setup_flow, "cmd_setup", started)
    with pytest.raises(SystemExit) as exit_:
        main(["setup", "--webhook-url", url])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert "--webhook-url: not an http(s) URL" in err and "Traceback" not in err


def test_setup_accepts_an_https_webhook_url() -> None:
    from model_assigner.bot.cli.setup import webhook_url

    assert webhook_url(" https://hooks.example.com/webhook ") == "https://hooks.example.com/webhook"
