"""A time budget per webhook delivery.

GitHub waits 10 seconds for an answer. Each GitHub request has its own
timeout and a few retries, but a chain of slow requests (the issue, the
comments, the comment, the label) could add up to far more. The handler
opens a budget when a delivery starts; the GitHub client reads it on every
attempt: a request's timeout is cut to what is left, a retry or a back-off
that would not fit is not made, and a request is not started with less than
``MIN_ATTEMPT`` seconds left. The delivery then fails (5xx, store undone)
instead of answering after GitHub gave up on it.

The budget belongs to the thread handling the delivery (gunicorn's gthread
worker runs one delivery per thread; PyGithub makes its requests in the
calling thread). Outside a delivery (the CLI), there is no budget.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

# GitHub calls of one delivery end within this many seconds of its start, so
# that undoing the store and answering still fit well inside GitHub's 10 s.
DELIVERY_BUDGET = 8.0
# No request or retry is started with less time than this left.
MIN_ATTEMPT = 0.5

_local = threading.local()


@contextmanager
def delivery_budget(seconds: float | None = None) -> Iterator[None]:
    """Run the block under a budget of ``seconds`` (default DELIVERY_BUDGET),
    measured from now. Nested budgets keep the earlier deadline."""
    budget = DELIVERY_BUDGET if seconds is None else seconds
    previous: float | None = getattr(_local, "deadline", None)
    deadline = time.monotonic() + budget
    _local.deadline = deadline if previous is None else min(previous, deadline)
    try:
        yield
    finally:
        _local.deadline = previous


def remaining() -> float:
    """Seconds left in this thread's budget (infinite outside a delivery)."""
    deadline: float | None = getattr(_local, "deadline", None)
    return math.inf if deadline is None else deadline - time.monotonic()


def can_start(seconds: float = 0.0) -> bool:
    """Whether an attempt (after waiting ``seconds``) still fits in the budget."""
    return remaining() - seconds >= MIN_ATTEMPT
