"""Prometheus metrics (GET /metrics) across gunicorn's worker processes.

Counters and histograms use prometheus-client's multiprocess mode: each worker
writes its own files under PROMETHEUS_MULTIPROC_DIR, and a scrape, answered by
any worker, adds them up. Quota and budget gauges are read from the store at
scrape time instead, so they are the store's truth, never a worker's stale copy.

The directory must be chosen before prometheus_client is first imported, which
is why this module imports it only inside ``Metrics``.
"""

from __future__ import annotations

import glob
import logging
import os
import shutil
import struct
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from model_assigner.core.quota import (
    INF,
    get_remaining_monthly_budget,
    remaining_daily,
    remaining_monthly,
)

ENV = "PROMETHEUS_MULTIPROC_DIR"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive
        return True
    return True


def prepare_multiprocess_dir(preferred: Path | None = None) -> Path:
    """Use the operator's PROMETHEUS_MULTIPROC_DIR, or make a fresh one: under
    ``preferred``, a folder of this server's own (named for the gunicorn
    master's pid, with --preload this process), so that counts from a
    previous run are not added to this one. Only the folders of servers that
    are gone are removed: a second server started on the same store must not
    empty a live one's."""
    existing = os.environ.get(ENV)
    if existing:
        Path(existing).mkdir(parents=True, exist_ok=True)
        return Path(existing)
    if preferred is not None:
        preferred.mkdir(parents=True, exist_ok=True)
        for other in preferred.iterdir():
            if other.is_dir() and other.name.isdigit() and not _alive(int(other.name)):
                shutil.rmtree(other, ignore_errors=True)
        folder = preferred / str(os.getpid())
        shutil.rmtree(folder, ignore_errors=True)  # a dead server's, with our pid
        folder.mkdir()
    else:
        folder = Path(tempfile.mkdtemp(prefix="model-assigner-metrics-"))
    os.environ[ENV] = str(folder)
    return folder


class Metrics:
    def __init__(self) -> None:
        from prometheus_client import Counter, Histogram

        self.deliveries = Counter(
            "model_assigner_deliveries", "Webhook deliveries by event and outcome",
            ["event", "outcome"],
        )
        self.decisions = Counter(
            "model_assigner_decisions", "Model assignments by model (overrides included)",
            ["model"],
        )
        self.deferrals = Counter("model_assigner_deferrals", "Issues deferred")
        self.github_errors = Counter(
            "model_assigner_github_errors", "GitHub API calls that failed after retries"
        )
        self.github_retries = Counter(
            "model_assigner_github_retries", "GitHub API requests retried"
        )
        self.delivery_seconds = Histogram(
            "model_assigner_delivery_seconds", "Time to handle one delivery", ["event"],
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
        )

    def exposition(self, store: Any, queue: Any = None, limiter: Any = None) -> tuple[bytes, str]:
        from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

        folder = os.environ.get(ENV)
        if not folder or not os.path.isdir(folder):
            raise ValueError(f"no metrics folder ({ENV}={folder or ''})")
        registry = CollectorRegistry()
        registry.register(ReadableFilesCollector(folder))
        registry.register(QuotaCollector(store))
        if queue is not None:
            registry.register(QueueCollector(queue, limiter))
        return generate_latest(registry), CONTENT_TYPE_LATEST


class ReadableFilesCollector:
    """prometheus-client's multiprocess collector, one file at a time: a file
    it cannot unpack (a worker that has just created its file and not yet
    written the header, or one cut short by a full disk) is skipped with a
    warning, where the library's own collector fails the whole scrape with a
    struct.error. One worker's unreadable counters must not blank the
    others', nor the quota gauges."""

    def __init__(self, path: str) -> None:
        self.path = path

    def collect(self) -> Iterator[Any]:
        from prometheus_client.multiprocess import MultiProcessCollector

        readable = []
        for name in sorted(glob.glob(os.path.join(self.path, "*.db"))):
            try:
                MultiProcessCollector._read_metrics([name])  # type: ignore[no-untyped-call]
            except (struct.error, ValueError, OSError) as exc:
                log.warning("metrics: skipped %s, unreadable (%s)", name, exc)
                continue
            readable.append(name)
        yield from MultiProcessCollector.merge(readable, accumulate=True)  # type: ignore[no-untyped-call]


class QueueCollector:
    """The delivery queue and the rate policy, read from the queue's file at
    scrape time: every process's work is in it, whichever worker answers."""

    def __init__(self, queue: Any, limiter: Any) -> None:
        self.queue = queue
        self.limiter = limiter

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        stats = self.queue.stats()
        depth = GaugeMetricFamily("model_assigner_queue_jobs", "Jobs in the delivery queue",
                                  labels=["state"])
        for state in ("waiting", "running", "dead"):
            depth.add_metric([state], getattr(stats, state))
        yield depth
        yield GaugeMetricFamily(
            "model_assigner_queue_oldest_job_seconds",
            "Age of the oldest job not yet done (0 when none)", value=stats.oldest_age,
        )
        for name, counter, help_text in (
            ("model_assigner_queue_retries", "retries", "Job attempts that failed and retried"),
            ("model_assigner_queue_dead_letters", "dead_letters",
             "Jobs that exhausted their attempts"),
            ("model_assigner_rate_limit_wait_seconds", "rate_limit_wait_seconds",
             "Seconds writes waited for their slot under the rate policy"),
            ("model_assigner_rate_limited", "rate_limited",
             "Rate-limit answers from GitHub (each blocks the installation)"),
            ("model_assigner_deliveries_caught_up", "caught_up",
             "Deliveries and issues enqueued by the catch-up"),
        ):
            yield CounterMetricFamily(name, help_text, value=stats.counters.get(counter, 0.0))
        if self.limiter is not None:
            yield GaugeMetricFamily(
                "model_assigner_rate_limited_installations",
                "Installations GitHub has asked to wait now", value=len(self.limiter.blocks()),
            )


class QuotaCollector:
    """Quota used and left per family, and the API budget, from the store."""

    def __init__(self, store: Any) -> None:
        self.store = store

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import GaugeMetricFamily

        state = self.store.read()
        used = GaugeMetricFamily(
            "model_assigner_quota_used_tokens", "Subscription tokens used",
            labels=["family", "period"],
        )
        left = GaugeMetricFamily(
            "model_assigner_quota_left_tokens",
            "Subscription tokens left (absent when unlimited)",
            labels=["family", "period"],
        )
        for family, sub in state.subscriptions.items():
            used.add_metric([family, "day"], sub.tokens_used_today)
            used.add_metric([family, "month"], sub.tokens_used_month)
            for period, value in (("day", remaining_daily(sub)), ("month", remaining_monthly(sub))):
                if value != INF:
                    left.add_metric([family, period], value)
        yield used
        yield left
        yield GaugeMetricFamily(
            "model_assigner_api_budget_left_usd", "API budget left this month",
            value=money(get_remaining_monthly_budget(state.api_budget)),
        )
        yield GaugeMetricFamily(
            "model_assigner_api_budget_spent_usd", "API budget spent this month",
            value=money(state.api_budget.spent_usd),
        )
        yield GaugeMetricFamily(
            "model_assigner_reservations", "Issues holding a reservation",
            value=len(state.reservations),
        )
        yield from usage_metrics(state)


def usage_metrics(state: Any) -> Iterator[Any]:
    """Estimated vs actual this month, over the issues that reported usage."""
    from prometheus_client.core import GaugeMetricFamily

    from model_assigner.bot.usage_store import usage_summary

    summary = usage_summary(state)
    tokens = GaugeMetricFamily(
        "model_assigner_usage_tokens",
        "Tokens of the issues that reported usage this month: estimated or actual",
        labels=["payer", "kind"],
    )
    for payer, row in summary["by_payer"].items():
        tokens.add_metric([payer, "estimated"], row["estimated_tokens"])
        tokens.add_metric([payer, "actual"], row["actual_tokens"])
    yield tokens
    dollars = GaugeMetricFamily(
        "model_assigner_usage_api_usd",
        "API dollars of the issues that reported usage this month: estimated or actual",
        labels=["kind"],
    )
    dollars.add_metric(["estimated"], summary["estimated_api_usd"])
    dollars.add_metric(["actual"], summary["actual_api_usd"])
    yield dollars
    yield GaugeMetricFamily(
        "model_assigner_usage_reported_issues", "Issues that reported usage this month",
        value=summary["issues_reported"],
    )


def money(value: float) -> float:
    """Dollars to the micro-dollar: sums of prices carry binary noise
    (0.024200000000000003) that no reader should see."""
    return round(value, 6) + 0.0  # + 0.0: never print -0.0


_metrics: Metrics | None = None
log = logging.getLogger("model_assigner.metrics")


def safely(record: Callable[[], object]) -> None:
    """Count something; a failure to count (a full disk, a file-size limit, the
    metrics folder removed) is logged, never raised: metrics must not change
    the outcome of a delivery whose label, comment and reservation are written."""
    try:
        record()
    except Exception as exc:
        log.warning("metrics not recorded: %s", exc)


def metrics() -> Metrics:
    """One set per process (prometheus-client refuses duplicate names)."""
    global _metrics
    if _metrics is None:
        if ENV not in os.environ:
            prepare_multiprocess_dir()
        _metrics = Metrics()
    return _metrics
