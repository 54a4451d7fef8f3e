"""X-Hub-Signature-256 checks (bot/web/signature.py)."""

from __future__ import annotations

import hashlib
import hmac

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from model_assigner.bot.web.signature import PREFIX, sign, verify
from tests.bot.support import WEBHOOKS

SECRET = "It's a Secret to Everybody"
# GitHub's documented example ("Validating webhook deliveries"): this secret and
# body give this header. It pins the algorithm, the key and the hex encoding.
GITHUB_BODY = b"Hello, World!"
GITHUB_HEADER = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"


@pytest.fixture
def body() -> bytes:
    """A real delivery body, byte for byte as GitHub would send it."""
    return (WEBHOOKS / "issues.opened.json").read_bytes()


def test_githubs_documented_example_verifies() -> None:
    assert sign(SECRET, GITHUB_BODY) == GITHUB_HEADER
    assert verify(SECRET, GITHUB_BODY, GITHUB_HEADER)


def test_sha256_signature_of_the_body_is_accepted(body: bytes) -> None:
    header = "sha256=" + hmac.new(b"s3cret", body, hashlib.sha256).hexdigest()
    assert verify("s3cret", body, header)


def test_wrong_secret_is_refused(body: bytes) -> None:
    assert not verify("s3cret", body, sign("another secret", body))
    assert not verify("s3cret", body, sign("s3cret ", body))


def test_different_body_is_refused(body: bytes) -> None:
    header = sign("s3cret", body)
    assert not verify("s3cret", body + b"\n", header)
    assert not verify("s3cret", body[:-1], header)
    tampered = body.replace(b'"opened"', b'"closed"', 1)
    assert tampered != body
    assert not verify("s3cret", tampered, header)


@pytest.mark.parametrize("header", [None, "", "sha256=", " ", PREFIX[:-1]])
def test_missing_or_empty_header_is_refused(body: bytes, header: str | None) -> None:
    assert not verify("s3cret", body, header)


def test_sha1_signature_alone_is_refused(body: bytes) -> None:
    """The legacy X-Hub-Signature value, correct for this body and secret."""
    sha1 = "sha1=" + hmac.new(b"s3cret", body, hashlib.sha1).hexdigest()
    assert not verify("s3cret", body, sha1)
    # Nor a sha1 digest dressed as sha256.
    assert not verify("s3cret", body, "sha256=" + sha1.removeprefix("sha1="))


@pytest.mark.parametrize(
    "mangle",
    [
        lambda h: h.upper(),  # "SHA256=" prefix
        lambda h: h[:-1],  # truncated
        lambda h: h + "0",  # extended
        lambda h: h + "\n",
        lambda h: " " + h,
        lambda h: h[:-1] + ("0" if h[-1] != "0" else "1"),  # last hex digit changed
    ],
)
def test_near_misses_are_refused(body: bytes, mangle: object) -> None:
    header = sign("s3cret", body)
    assert callable(mangle)
    assert not verify("s3cret", body, mangle(header))


@pytest.mark.parametrize("header", ["sha256=é" + "0" * 63, "sha256=\u2603", "sha256=\ud800"])
def test_non_ascii_header_is_refused_not_an_error(body: bytes, header: str) -> None:
    """Werkzeug decodes headers as Latin-1, so a forged header can hold any such
    character; it must be refused (401), not crash the view (500)."""
    assert verify("s3cret", body, header) is False


@settings(max_examples=150, deadline=None)
@given(secret=st.text(min_size=1), data=st.binary(max_size=512), header=st.text(max_size=80))
def test_arbitrary_headers_never_raise_and_only_the_right_one_passes(
    secret: str, data: bytes, header: str
) -> None:
    assert verify(secret, data, header) is (header == sign(secret, data))
    assert verify(secret, data, PREFIX + header) is (PREFIX + header == sign(secret, data))
    assert verify(secret, data, sign(secret, data))
