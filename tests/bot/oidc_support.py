"""A GitHub Actions OIDC issuer for tests: RSA keys made here, their JWKS
served over HTTP on loopback, and tokens signed as GitHub signs them."""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

ISSUER = "https://token.actions.githubusercontent.com"
AUDIENCE = "model-assigner-test"


@dataclass
class Issuer:
    """Signs tokens with ``key`` (kid ``k1``); ``fetches`` counts JWKS GETs."""

    url: str
    key: rsa.RSAPrivateKey
    fetches: list[str] = field(default_factory=list)
    # What the runner's token endpoint (``token_url``) issues tokens for.
    token_repository: str = "Codertocat/Hello-World"
    token_url: str = ""

    def token(self, repository: str, *, run_id: str = "8101", attempt: str = "1",
              audience: str = AUDIENCE, expires_in: int = 300,
              key: rsa.RSAPrivateKey | None = None, **extra: Any) -> str:
        now = int(time.time())
        claims = {
            "jti": str(uuid.uuid4()),
            "sub": f"repo:{repository}:ref:refs/heads/main",
            "aud": audience,
            "iss": ISSUER,
            "iat": now - 5,
            "nbf": now - 5,
            "exp": now + expires_in,
            "repository": repository,
            "repository_owner": repository.split("/")[0],
            "run_id": run_id,
            "run_attempt": attempt,
            "actor": "octocat",
            "workflow": "agent",
            **extra,
        }
        return jwt.encode(claims, key or self.key, algorithm="RS256", headers={"kid": "k1"})


def _jwks(key: rsa.RSAPrivateKey) -> bytes:
    public = json.loads(RSAAlgorithm.to_jwk(key.public_key()))
    public.update(kid="k1", use="sig", alg="RS256")
    return json.dumps({"keys": [public]}).encode()


@contextmanager
def oidc_issuer() -> Iterator[Issuer]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    body = _jwks(key)
    fetches: list[str] = []

    issuers: list[Issuer] = []

    class JwksHandler(BaseHTTPRequestHandler):
        """/.well-known/jwks: the keys; /token?audience=A: what a runner's
        ACTIONS_ID_TOKEN_REQUEST_URL answers ({"value": <JWT>})."""

        def do_GET(self) -> None:
            answer = body
            if self.path.startswith("/token"):
                query = parse_qs(urlsplit(self.path).query)
                issuer = issuers[0]
                token = issuer.token(issuer.token_repository, audience=query["audience"][0])
                answer = json.dumps({"value": token}).encode()
            else:
                fetches.append(self.path)
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        def log_message(self, format: str, *args: Any) -> None:
            return None

    server = ThreadingHTTPServer(("127.0.0.1", 0), JwksHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        port = server.server_address[1]
        issuer = Issuer(f"http://127.0.0.1:{port}/.well-known/jwks", key, fetches,
                        token_url=f"http://127.0.0.1:{port}/token?api-version=2.0")
        issuers.append(issuer)
        yield issuer
    finally:
        server.shutdown()
        server.server_close()
