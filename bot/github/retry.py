"""Retries and rate limits of GitHub requests, for the 10-second delivery
window and for the queue's workers.

Inside a delivery (bot/deadline.py) retries are few and short: a
``Retry-After`` longer than we can wait fails fast (GitHub can redeliver),
and no attempt starts that cannot finish within the budget. Outside one (a
queue worker), a rate limit is not sat out in one thread but raised at once
as RateLimitHit, for the rate policy (bot/queue/ratelimit.py) to hold every
worker of the installation. ``rate_limit_of`` reads GitHub's rate-limit
answers, wherever they come from.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Mapping
from typing import Any

from github import GithubException, GithubRetry
from urllib3.exceptions import ReadTimeoutError
from urllib3.util.retry import Retry
from urllib3.util.timeout import Timeout

from model_assigner.bot import deadline

MAX_RETRY_WAIT = 3.0  # longest Retry-After / backoff we sit out inside a delivery


class RetryAfterTooLong(GithubException):
    def __init__(self, wait: float) -> None:
        super().__init__(429, {"message": f"Retry-After {wait:g}s exceeds the delivery window"})
        self.wait = wait


class DeliveryBudgetSpent(GithubException):
    def __init__(self, what: str) -> None:
        super().__init__(504, {"message": f"the delivery's time budget is spent ({what})"})


class BudgetTimeout(int, Timeout):
    """Each request's timeout, cut to what is left of the delivery's budget
    (bot/deadline.py). urllib3 takes a fresh copy of the timeout for every
    attempt, retries included, so this is where an attempt that cannot fit is
    refused, before a connection is taken from the pool.

    An int too: PyGithub asserts that its timeout is one, and passes it on to
    requests untouched, which hands a urllib3 Timeout on as it is."""

    def __new__(cls, seconds: int) -> BudgetTimeout:
        return super().__new__(cls, seconds)

    def __init__(self, seconds: int) -> None:
        Timeout.__init__(self, connect=seconds, read=seconds)

    def clone(self) -> Timeout:
        left = deadline.remaining()
        if not deadline.can_start():
            raise DeliveryBudgetSpent(f"{max(left, 0.0):.1f}s left")
        cap = min(float(int(self)), left)
        return Timeout(connect=cap, read=cap, total=cap)


class DeliveryRetry(GithubRetry):
    """GithubRetry, bounded to fit GitHub's 10-second delivery window.

    A POST whose answer timed out may have been done all the same (a comment
    created): it is not sent again, or a slow GitHub would get duplicate
    comments. The delivery fails instead, and its redelivery finds the comment
    by its marker. Connection failures and resets (a stale keep-alive
    connection) are still retried."""

    def increment(  # type: ignore[override]
        self,
        method: str | None = None,
        url: str | None = None,
        response: Any = None,
        error: Exception | None = None,
        _pool: Any = None,
        _stacktrace: Any = None,
    ) -> Retry:
        if method == "POST" and isinstance(error, ReadTimeoutError):
            raise error
        if (
            response is not None
            and response.status in (403, 429)
            and deadline.remaining() == math.inf
        ):
            # A queue worker (no delivery budget): a rate limit is not sat out
            # here, in one thread, but recorded for every worker of the
            # installation (bot/queue/ratelimit.py), and the job waits in the queue.
            hit = rate_limit_of(response.status, response.headers, _message(response, url))
            if hit is not None:
                raise hit
        retry = super().increment(method, url, response, error, _pool, _stacktrace)
        from model_assigner.bot.metrics import metrics, safely

        safely(lambda: metrics().github_retries.inc())  # only when a retry will be made
        return retry

    def sleep_for_retry(self, response: Any = None) -> bool:
        wait = self.get_retry_after(response) if response is not None else None
        if wait is not None and wait > MAX_RETRY_WAIT:
            raise RetryAfterTooLong(wait)
        if wait is not None and not deadline.can_start(wait):
            raise DeliveryBudgetSpent(f"Retry-After {wait:g}s does not fit")
        return bool(super().sleep_for_retry(response))

    def _sleep_backoff(self) -> None:
        wait = self.get_backoff_time()
        if not deadline.can_start(wait):
            raise DeliveryBudgetSpent(f"a back-off of {wait:g}s does not fit")
        super()._sleep_backoff()


class RateLimitHit(GithubException):
    """GitHub answered a rate limit; ``wait`` in seconds (None: a secondary
    limit that did not say how long)."""

    def __init__(self, status: int, headers: Mapping[str, str], message: str,
                 wait: float | None) -> None:
        super().__init__(status, {"message": message}, dict(headers))
        self.wait = wait


def _message(response: Any, url: str | None) -> str:
    try:
        data = json.loads(GithubRetry.get_content(response, url or ""))
    except Exception:  # not JSON: GitHub's rate limits always are
        return ""
    message = data.get("message") if isinstance(data, dict) else None
    return message if isinstance(message, str) else ""


def rate_limit_of(status: int, headers: Mapping[str, str], message: str) -> RateLimitHit | None:
    """GitHub's rate-limit answers, as its documentation describes them:
    ``retry-after`` (seconds); else ``x-ratelimit-remaining: 0`` with
    ``x-ratelimit-reset`` (an epoch time); else a 403/429 whose message names
    a rate limit (a secondary limit without retry-after)."""
    lowered = {k.lower(): v for k, v in headers.items()}
    retry_after = lowered.get("retry-after")
    if retry_after is not None:
        try:
            return RateLimitHit(status, headers, message, max(float(retry_after), 0.0))
        except ValueError:
            pass
    if lowered.get("x-ratelimit-remaining") == "0":
        reset = lowered.get("x-ratelimit-reset", "")
        wait = float(reset) - time.time() + 1.0 if reset.isdigit() else None
        return RateLimitHit(status, headers, message, None if wait is None else max(wait, 1.0))
    if "rate limit" in message.lower() or status == 429:
        return RateLimitHit(status, headers, message, None)
    return None


def delivery_retry() -> DeliveryRetry:
    return DeliveryRetry(
        total=2,
        backoff_factor=0.25,
        backoff_max=MAX_RETRY_WAIT,
        secondary_rate_wait=MAX_RETRY_WAIT,
        max_rate_limit_wait=MAX_RETRY_WAIT,
        allowed_methods={"GET", "POST", "PATCH", "PUT", "DELETE"},
        status_forcelist=[500, 502, 503, 504],
        raise_on_status=False,
    )
