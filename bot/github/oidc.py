"""GitHub Actions OIDC tokens: who is posting a usage report.

A workflow with ``permissions: id-token: write`` can ask GitHub for a JWT
signed with GitHub's keys (RS256), naming the repository, the run and the
audience it asked for. Checking its signature against the published keys
(fetched from the JWKS URL and cached), its issuer, audience and expiry
proves the report comes from a workflow of that repository, with no secret
to hand out or rotate.

PyJWT does the JWT work (with ``cryptography``): signature, ``exp``/``nbf``/
``iat`` with a little leeway, audience and issuer, and the key set's cache
(refetched when a token names a key id it has not seen, as after GitHub
rotates its keys).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import jwt

log = logging.getLogger("model_assigner.usage")

GITHUB_ISSUER = "https://token.actions.githubusercontent.com"
GITHUB_JWKS_URL = f"{GITHUB_ISSUER}/.well-known/jwks"
MAX_TOKEN_CHARS = 8192
LEEWAY_SECONDS = 30


class OidcRejected(Exception):
    """The token does not prove what it must; ``status`` is the HTTP answer
    (401: not a valid token for us; 503: GitHub's keys cannot be fetched)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class WorkflowIdentity:
    """The claims a usage report relies on."""

    repository: str
    run_id: str
    run_attempt: str
    token_id: str | None
    actor: str | None


class OidcVerifier:
    def __init__(
        self,
        audience: str,
        jwks_url: str = GITHUB_JWKS_URL,
        issuer: str = GITHUB_ISSUER,
        cache_seconds: int = 3600,
        timeout: int = 3,
    ) -> None:
        self.audience = audience
        self.issuer = issuer
        self._keys = jwt.PyJWKClient(
            jwks_url, cache_keys=True, lifespan=cache_seconds, timeout=timeout
        )

    def verify(self, token: str) -> WorkflowIdentity:
        if not token or len(token) > MAX_TOKEN_CHARS:
            raise OidcRejected(401, "missing or oversized bearer token")
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise OidcRejected(401, "not a JWT") from None
        if header.get("alg") != "RS256":
            raise OidcRejected(401, "token not signed with RS256")
        try:
            key = self._keys.get_signing_key_from_jwt(token)
        except jwt.PyJWKClientConnectionError as exc:
            log.warning("OIDC keys unavailable: %s", exc)
            raise OidcRejected(503, "cannot fetch the OIDC signing keys; retry later") from None
        except jwt.PyJWKClientError:
            raise OidcRejected(401, "token signed with an unknown key") from None
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key.key,
                algorithms=["RS256"],
                audience=self.audience,
                issuer=self.issuer,
                leeway=LEEWAY_SECONDS,
                options={"require": ["exp", "iat", "iss", "aud"]},
            )
        except jwt.ExpiredSignatureError:
            raise OidcRejected(401, "token expired") from None
        except jwt.InvalidAudienceError:
            raise OidcRejected(401, "token audience is not this App's") from None
        except jwt.InvalidIssuerError:
            raise OidcRejected(401, "token issuer is not GitHub Actions") from None
        except jwt.PyJWTError as exc:
            raise OidcRejected(401, f"invalid token ({type(exc).__name__})") from None
        return identity(claims)


def identity(claims: Mapping[str, Any]) -> WorkflowIdentity:
    repository, run_id = claims.get("repository"), claims.get("run_id")
    if not isinstance(repository, str) or not repository:
        raise OidcRejected(401, "token has no repository claim")
    if not isinstance(run_id, str | int) or not str(run_id):
        raise OidcRejected(401, "token has no run_id claim")
    attempt = claims.get("run_attempt")
    token_id, actor = claims.get("jti"), claims.get("actor")
    return WorkflowIdentity(
        repository=repository,
        run_id=str(run_id),
        run_attempt=str(attempt) if isinstance(attempt, str | int) else "1",
        token_id=token_id if isinstance(token_id, str) else None,
        actor=actor if isinstance(actor, str) else None,
    )
