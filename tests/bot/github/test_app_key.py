"""bot/github/app_key.py: the App's key is parsed once, where the settings
check it, and every JWT the App sends (``GET /app``, the installation token)
is signed with that key, verifiable with the App's public key."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jwt
import pytest
import responses
from cryptography.hazmat.primitives import serialization

import model_assigner.bot.github.app_key as app_key_module
from model_assigner.bot.github.api import GitHubApp
from model_assigner.bot.settings import load_settings
from tests.bot.rest_mock import RestMock
from tests.bot.support import APP_ID, REPO, app_key, webhook
from tests.helpers import CONFIG_DIR


@pytest.fixture
def parses(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[int]]:
    """The PEM parses cryptography is asked for, by us or by PyJWT (which
    parses a key given as text on every JWT); the real parser still runs."""
    calls: list[int] = []
    real = app_key_module.load_pem_private_key

    def counting(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(app_key_module, "load_pem_private_key", counting)
    monkeypatch.setattr(jwt.algorithms, "load_pem_private_key", counting)
    app_key_module.parsed_key.cache_clear()
    yield calls
    app_key_module.parsed_key.cache_clear()


def verified(token: str, public_pem: str | bytes, **options: bool) -> dict[str, Any]:
    """The token's claims, checked against a public key given as an object:
    PyJWT tries a PEM text as a private key first, which would count."""
    key = serialization.load_pem_public_key(
        public_pem.encode() if isinstance(public_pem, str) else public_pem)
    claims: dict[str, Any] = jwt.decode(token, key, algorithms=["RS256"],  # type: ignore[arg-type]
                                        options=dict(options))
    return claims


def test_jwts_are_signed_with_the_key_parsed_once(parses: list[int]) -> None:
    sign = app_key_module.jwt_signer(app_key().private_pem)
    tokens = [sign({"iss": str(APP_ID), "iat": n, "exp": n + 600}) for n in range(3)]
    for n, token in enumerate(tokens):
        claims = verified(token, app_key().public_pem, verify_exp=False, verify_iat=False)
        assert claims == {"iss": str(APP_ID), "iat": n, "exp": n + 600}
    assert parses == [1]


def test_a_server_signs_with_the_key_its_settings_checked(
    parses: list[int], tmp_path: Path
) -> None:
    settings = load_settings({
        "GITHUB_APP_ID": str(APP_ID), "GITHUB_PRIVATE_KEY": app_key().private_pem,
        "GITHUB_WEBHOOK_SECRET": "s", "MODEL_ASSIGNER_STATE": str(tmp_path / "state.json"),
        "MODEL_ASSIGNER_CONFIG": str(CONFIG_DIR),
    })
    assert parses == [1]  # the settings' check, in gunicorn's master
    with responses.RequestsMock(assert_all_requests_are_fired=True) as rsps:
        gh = RestMock(rsps)
        gh.app()
        gh.token()
        gh.issue(webhook("issues.opened")["issue"])
        github = GitHubApp(settings)
        github.bot_login()
        github.installation(1).get_issue(REPO, 1, {})
        bearer = [str(call.request.headers["Authorization"]).removeprefix("Bearer ")
                  for call in rsps.calls if call.request.url and "/app" in call.request.url]
    assert len(bearer) == 2  # GET /app and the installation token: two JWTs
    for token in bearer:
        assert verified(token, app_key().public_pem)["iss"] == str(APP_ID)
    assert parses == [1]  # neither parsed the key again


def test_another_key_is_parsed_for_itself(parses: list[int]) -> None:
    from cryptography.hazmat.primitives.asymmetric import rsa

    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = other.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                              serialization.NoEncryption()).decode()
    app_key_module.jwt_signer(app_key().private_pem)({"iss": "1"})
    token = app_key_module.jwt_signer(pem)({"iss": "2"})
    public = other.public_key().public_bytes(serialization.Encoding.PEM,
                                             serialization.PublicFormat.SubjectPublicKeyInfo)
    assert verified(token, public) == {"iss": "2"}
    assert parses == [1, 1]
