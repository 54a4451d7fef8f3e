"""Writing a decision back to its issue: the comment, then the labels (stale
model labels off, the new one on last). The one path that writes decisions
to GitHub, for the queue's workers, the catch-up (both through
``Handler.decide``) and ``plan --apply`` (through ``Handler.write_back``)."""

from __future__ import annotations

from collections.abc import Sequence

from model_assigner.bot.comment import MARKER, Override, digest
from model_assigner.bot.github.gateway import CommentGone, IssueGateway
from model_assigner.bot.github.repo_config import LabelsConfig
from model_assigner.bot.handling.event import IssueEvent
from model_assigner.bot.store.state import IssueRecord
from model_assigner.core.catalog import find_model
from model_assigner.core.types import Model


def write_back(
    gateway: IssueGateway,
    event: IssueEvent,
    record: IssueRecord | None,
    body: str,
    labels_now: list[str],
    label: str,
    labels: LabelsConfig,
    models: Sequence[Model],
    override: Override | None,
    own: str | None,
    sent: list[IssueRecord] | None = None,
    fresh: bool = False,
) -> IssueRecord:
    """Write the comment, then the labels; its requests go through the
    installation's gateway, and so through its rate policy."""
    comment = write_comment(gateway, event, record, body, sent, fresh)
    write_label(gateway, event, labels_now, label, labels, models, override, own)
    return comment


def write_label(
    gateway: IssueGateway,
    event: IssueEvent,
    labels_now: list[str],
    wanted: str,
    labels: LabelsConfig,
    models: Sequence[Model],
    override: Override | None,
    own: str | None,
) -> None:
    """``own``: the model label the bot itself last put on the issue."""
    if override is not None:
        wanted = labels.model_label(override.model)
    # Stale labels off before the new one goes on: if GitHub fails in
    # between, the issue is left with no model label rather than with one
    # the store does not know (which would read as a person's override).
    for name in labels_now:
        if name.lower() != wanted.lower() and bots_label(name, labels, models, own):
            gateway.remove_label(event.repo, event.number, name)
    present = {name.lower() for name in labels_now}
    if wanted.lower() not in present:
        deferred = wanted == labels.deferred_label
        gateway.ensure_label(
            event.repo,
            wanted,
            labels.deferred_label_color if deferred else labels.model_label_color,
            "model-assigner: deferred" if deferred else "model-assigner: model for this issue",
        )
        gateway.add_label(event.repo, event.number, wanted)


def bots_label(name: str, labels: LabelsConfig, models: Sequence[Model], own: str | None) -> bool:
    """A label the bot may take off: its deferred label, its own last label,
    or a model label naming a model of the catalog. Never another label
    that merely shares the prefix (a person's, or the repository's own)."""
    if not labels.is_model_label(name):
        return own is not None and name.lower() == own.lower()
    if name.lower() in (labels.deferred_label.lower(), (own or "").lower()):
        return True
    model = labels.model_from_label(name)
    return model is not None and find_model(models, model) is not None


def write_comment(
    gateway: IssueGateway, event: IssueEvent, record: IssueRecord | None, body: str,
    sent: list[IssueRecord] | None = None, fresh: bool = False,
) -> IssueRecord:
    """Create or edit the bot's comment. ``fresh``: the store has no trace
    of the issue (a write is always preceded by a mark in the store, and
    a failed one keeps what it may have created, see
    ReservationStep.undo) and the issue's latest state counts no
    comment: the comment is created without listing the issue's
    comments first. ``sent`` receives the comment created (or a mark
    when its answer was lost)."""
    text_digest = digest(body)
    if fresh and record is None:
        return _create_comment(gateway, event, body, text_digest, sent)
    if record is not None and record.id is not None:
        if record.digest == text_digest:
            return record
        try:
            gateway.edit_comment(event.repo, record.id, body)
            return IssueRecord(id=record.id, digest=text_digest)
        except CommentGone:
            pass  # someone deleted it: find another one or write a new one
    found = gateway.find_comment(event.repo, event.number, MARKER)
    if found is None:
        return _create_comment(gateway, event, body, text_digest, sent)
    comment_id, old_body = found
    if digest(old_body) != text_digest:
        try:
            gateway.edit_comment(event.repo, comment_id, body)
        except CommentGone:  # deleted since we listed it
            comment_id = gateway.create_comment(event.repo, event.number, body)
    return IssueRecord(id=comment_id, digest=text_digest)


def _create_comment(
    gateway: IssueGateway, event: IssueEvent, body: str, text_digest: str,
    sent: list[IssueRecord] | None,
) -> IssueRecord:
    if sent is not None:
        sent.append(IssueRecord())  # sent, answer not yet known
    created = IssueRecord(
        id=gateway.create_comment(event.repo, event.number, body), digest=text_digest
    )
    if sent is not None:
        sent[-1] = created
    return created
