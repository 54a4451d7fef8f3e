"""The App's private key, parsed once per process tree, and the JWTs it signs.

Why: PyGithub's ``AppAuth`` hands the PEM text to PyJWT, which parses and
validates the RSA key again for every JWT it signs: about 40 ms of CPU here,
holding the GIL. A gunicorn worker signs two JWTs on its first job (``GET
/app`` and the installation token), so the first burst after a start had
acknowledgements waiting behind them in the same process (bench_burst: p99
135 ms cold against 30 ms warm). Settings parse the key once in gunicorn's
master to check it (``--preload``); the workers it forks inherit the parsed
key and sign with it.

The cache holds the key object, as the settings hold its text; neither is
ever logged.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes
from cryptography.hazmat.primitives.serialization import load_pem_private_key

# GitHub Apps sign their JWTs with RS256 (PyGithub's default algorithm).
ALGORITHM = "RS256"


@functools.lru_cache(maxsize=4)
def parsed_key(pem: str) -> PrivateKeyTypes:
    """The key in ``pem``; raises ValueError, TypeError or UnsupportedAlgorithm
    when it is not a usable unencrypted PEM private key."""
    return load_pem_private_key(pem.encode("utf-8", errors="replace"), password=None)


def jwt_signer(pem: str) -> Callable[[dict[str, Any]], str]:
    """PyGithub's ``AppAuth(sign_func=...)``: sign a JWT's claims with the
    key parsed once."""

    def sign(payload: dict[str, Any]) -> str:
        import jwt  # PyGithub's own dependency, loaded with it; not for settings

        key = parsed_key(pem)
        return jwt.encode(payload, key=key, algorithm=ALGORITHM)  # type: ignore[arg-type]

    return sign
