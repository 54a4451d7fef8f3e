"""Webhook signature checks (GitHub's X-Hub-Signature-256).

Checked over the raw body before any parsing, in constant time, so that an
attacker can neither make us parse untrusted JSON nor time the comparison.
"""

from __future__ import annotations

import hashlib
import hmac

PREFIX = "sha256="


def sign(secret: str, body: bytes) -> str:
    """The header value GitHub would send for ``body``."""
    return PREFIX + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def verify(secret: str, body: bytes, header: str | None) -> bool:
    """True only for a sha256 signature of exactly this body. The legacy
    ``sha1=`` scheme (X-Hub-Signature) is refused: it is not accepted alone."""
    if not header or not header.startswith(PREFIX):
        return False
    # Compared as bytes: compare_digest refuses str with non-ASCII characters
    # (TypeError), and a forged header may carry any Latin-1 text.
    return hmac.compare_digest(
        sign(secret, body).encode(), header.encode("utf-8", errors="replace")
    )
