"""The usage section of the bot's comment, written back by the queue's
workers (issue 10: no GitHub write outside the installation's rate policy).

A usage report (``POST /usage`` or an ``issue_comment`` with a usage marker)
is recorded and charged in the request, in one store transaction; the edit
of the bot's comment on GitHub is then a job of the issue in the durable
queue (event ``usage_comment``), taken by a worker, written through the
installation's gateway and so its rate policy, retried on 5xx and deferred
on a rate limit like every other write. The job carries no usage: the
worker renders what the store holds when it runs, so reports that arrive
together coalesce into one edit with all of them.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Mapping
from typing import Any

from model_assigner.bot.comment import MARKER, digest
from model_assigner.bot.github.gateway import CommentGone, IssueGateway
from model_assigner.bot.handling.event import Outcome
from model_assigner.bot.handling.handler import Handler
from model_assigner.bot.issue_task import issue_key
from model_assigner.bot.queue.jobs import USAGE_COMMENT, JobQueue
from model_assigner.bot.store.state import IssueRecord, State
from model_assigner.bot.usage_comment import with_usage

log = logging.getLogger("model_assigner.usage")

EVENT = USAGE_COMMENT


def enqueue_usage_comment(queue: JobQueue, repo: str, number: int,
                          installation: int | None) -> str:
    """Queue the comment's usage update as a job of the issue; returns its
    delivery id."""
    delivery = f"usage-{uuid.uuid4()}"
    queue.accept(
        delivery, EVENT,
        {"repository": {"full_name": repo}, "issue": {"number": number},
         "installation": {"id": installation} if installation is not None else None},
        issue_key(repo, number), installation,
    )
    return delivery


def write_usage_comment(handler: Handler, gateway: IssueGateway, repo: str,
                        number: int) -> bool:
    """Put the store's usage of the issue into the bot's comment, under the
    issue's lock; False when there is no comment yet (the decision's comment
    will carry it). GitHubUnavailable and GitHubRateLimited go to the caller
    (the worker retries or waits)."""
    key = issue_key(repo, number)
    with handler.issue_locks.hold(key):
        record = handler.store.view(lambda state: state.usage.get(key))
        found = gateway.find_comment(repo, number, MARKER)
        if found is None:
            return False
        comment_id, old = found
        new = with_usage(old, record)
        if new != old:
            try:
                gateway.edit_comment(repo, comment_id, new)
            except CommentGone:
                return False

        def remember(state: State) -> None:
            known = state.records.get(key) or IssueRecord()
            state.records[key] = known.model_copy(update={"id": comment_id,
                                                           "digest": digest(new)})

        handler.store.apply(handler.clock(), remember)
    return True


def usage_comment_task(handler: Handler) -> Any:
    """The queue worker's task for ``usage_comment`` jobs."""

    def run(delivery: str, payload: Mapping[str, Any]) -> Outcome:
        repository = payload.get("repository") or {}
        issue = payload.get("issue") or {}
        installation = (payload.get("installation") or {}).get("id")
        repo, number = repository.get("full_name"), issue.get("number")
        if not isinstance(repo, str) or type(number) is not int:
            return Outcome(400, {"error": "usage_comment job without an issue"})
        if not isinstance(installation, int):
            # Not a GitHub App's job: no gateway can write it, retrying
            # cannot help (the usage stays in the store, for the next comment).
            return Outcome(400, {"error": "usage_comment job without an installation",
                                 "issue": issue_key(repo, number)})
        gateway = handler.gateway_for(installation)
        updated = write_usage_comment(handler, gateway, repo, number)
        key = issue_key(repo, number)
        log.info("usage comment of %s %s", key, "updated" if updated else "not there yet")
        return Outcome(200, {"status": "usage comment updated" if updated
                             else "usage comment: no comment yet", "issue": key})

    return run
