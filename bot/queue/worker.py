"""Queue workers: take a job, decide its issue, write it back, or wait.

Threads inside each web process by default (``MODEL_ASSIGNER_QUEUE_WORKERS``,
2), started after gunicorn forks its workers; ``model-assigner worker`` runs
more in a process of its own. Every worker of every process shares the queue
and the installation's rate policy through the queue's SQLite file.

A job's outcome, by what went wrong:
- nothing: its deliveries' outcomes are recorded and the job goes;
- a rate limit GitHub answered: the installation is blocked until the limit
  ends (bot/queue/ratelimit.py), and the job waits that long; it is not an attempt;
- no write slot soon enough (our own pacing): the job waits for its slot;
- GitHub failing or timing out, the store failing, anything unexpected: the
  attempt counts, and the job waits ``retry_base * 2**(attempts-1)`` seconds
  (at most 15 minutes); after ``max_attempts`` it is dead, with its reason,
  for ``model-assigner queue`` to show, retry or drop.
Whatever fails between a job's steps, the handler leaves the store as it was
(keeping what it knows of a comment it may have written), so the next
attempt converges the issue to one label, one comment and one reservation.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from model_assigner.bot.github.gateway import GitHubRateLimited, GitHubUnavailable
from model_assigner.bot.handling.event import Outcome
from model_assigner.bot.handling.handler import Handler
from model_assigner.bot.queue.db import QueueDbError
from model_assigner.bot.queue.jobs import Job, JobQueue, owner_id
from model_assigner.bot.queue.ratelimit import RateLimits
from model_assigner.bot.store.state import StoreError

log = logging.getLogger("model_assigner.queue")

MAX_BACKOFF = 900.0
IDLE_POLL = 0.2


class Worker:
    def __init__(
        self,
        handler: Handler,
        queue: JobQueue,
        limiter: RateLimits,
        *,
        threads: int = 2,
        max_attempts: int = 8,
        retry_base: float = 5.0,
        on_outcome: Callable[[int, dict[str, Any]], None] | None = None,
        periodic: Callable[[], object] | None = None,
        periodic_seconds: float = 0.0,
        tasks: Mapping[str, Callable[[str, dict[str, Any]], Outcome]] | None = None,
    ) -> None:
        """``tasks``: what runs a job entry of another event than a webhook
        delivery's (the usage comment's update, bot/usage_writeback.py); the
        rest is decided by the handler."""
        self.handler = handler
        self.queue = queue
        self.limiter = limiter
        self.threads = threads
        self.max_attempts = max_attempts
        self.retry_base = retry_base
        self.on_outcome = on_outcome
        self.periodic = periodic
        self.periodic_seconds = periodic_seconds
        self.tasks = dict(tasks or {})
        self._stop = threading.Event()
        self._started: list[threading.Thread] = []

    # -- running -----------------------------------------------------------

    def start(self) -> None:
        """Start the worker threads (daemons: a process that exits takes them;
        their leases are then taken again, see bot/queue/jobs.py)."""
        if self._started:
            return
        for n in range(self.threads):
            thread = threading.Thread(
                target=self._loop, args=(owner_id(f"w{n}"),), name=f"queue-worker-{n}",
                daemon=True,
            )
            thread.start()
            self._started.append(thread)
        if self.periodic is not None and self.periodic_seconds > 0:
            thread = threading.Thread(target=self._periodic_loop, name="queue-catchup",
                                      daemon=True)
            thread.start()
            self._started.append(thread)

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        for thread in self._started:
            thread.join(timeout)

    def _loop(self, owner: str) -> None:
        while not self._stop.is_set():
            try:
                worked = self.run_one(owner)
            except Exception:  # the queue file itself failing: keep trying
                log.exception("queue worker: cannot take a job")
                worked = False
            if not worked:
                self._stop.wait(IDLE_POLL)

    def _periodic_loop(self) -> None:
        assert self.periodic is not None
        while not self._stop.is_set():
            try:
                self.periodic()
            except Exception:
                log.exception("catch-up failed; trying again later")
            self._stop.wait(self.periodic_seconds)

    def drain(self, owner: str = "drain", timeout: float = 60.0) -> None:
        """Work in this thread until no job is ready (tests, the CLI)."""
        end = time.monotonic() + timeout
        while time.monotonic() < end and self.run_one(owner_id(owner)):
            pass

    # -- one job -----------------------------------------------------------

    def run_one(self, owner: str) -> bool:
        """Take one ready job and see it through; False when none is ready."""
        job = self.queue.claim(owner)
        if job is None:
            return False
        self.process(job)
        return True

    def process(self, job: Job) -> None:
        outcomes: dict[str, tuple[int, dict[str, Any]]] = {}
        final: tuple[int, dict[str, Any]] = (200, {"status": "nothing to do"})
        try:
            for entry in job.ordered():
                if job.installation is not None:
                    self.limiter.check(job.installation)
                task = self.tasks.get(entry.event)
                outcome = (task(entry.delivery, entry.payload) if task is not None
                           else self.handler.decide(entry.event, entry.delivery, entry.payload))
                outcomes[entry.delivery] = final = (outcome.status, outcome.body)
                if self.on_outcome is not None:
                    self.on_outcome(outcome.status, outcome.body)
        except GitHubRateLimited as exc:
            self._rate_limited(job, exc)
            return
        except (GitHubUnavailable, StoreError, QueueDbError) as exc:
            if isinstance(exc, GitHubUnavailable):
                from model_assigner.bot.metrics import metrics

                metrics().github_errors.inc()
            self._failed(job, str(exc))
            return
        except Exception as exc:
            log.exception("job %s: unexpected error", job.key)
            self._failed(job, f"{type(exc).__name__}: {exc}")
            return
        self.queue.finish(job, outcomes, final)

    def _rate_limited(self, job: Job, exc: GitHubRateLimited) -> None:
        if exc.answered and job.installation is not None:
            until = self.limiter.block(job.installation, exc.wait, str(exc))
            log.warning("installation %s rate limited until %s: %s", job.installation,
                        time.strftime("%H:%M:%S", time.gmtime(until)), exc)
        elif exc.until is not None:
            until = exc.until
        else:
            until = time.time() + self.limiter.policy.secondary_wait
        self.queue.defer(job, until, str(exc))

    def _failed(self, job: Job, reason: str) -> None:
        delay = min(self.retry_base * 2 ** max(job.attempts - 1, 0), MAX_BACKOFF)
        dead = self.queue.retry(job, reason, delay, self.max_attempts)
        if dead:
            log.error("job %s: dead after %d attempts: %s", job.key, job.attempts, reason)
        else:
            log.warning("job %s: attempt %d failed (%s); again in %.0fs", job.key,
                        job.attempts, reason, delay)
