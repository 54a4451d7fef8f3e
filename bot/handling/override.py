"""A person's choice of model: a ``model:<name>`` label the bot did not set,
honoured when its setter has the role the operator asks
(``override_min_permission``), kept and charged as set, even past the quota."""

from __future__ import annotations

from collections.abc import Sequence

from model_assigner.bot.comment import Override, _code
from model_assigner.bot.github.gateway import IssueGateway
from model_assigner.bot.github.repo_config import LabelsConfig
from model_assigner.bot.handling.event import IssueEvent
from model_assigner.bot.store.state import State
from model_assigner.core.assessment import Assessment
from model_assigner.core.catalog import find_model
from model_assigner.core.config import ScoringConfig
from model_assigner.core.quota import calculate_cost, payment_for
from model_assigner.core.reasons import Reason, ReasonCode, reason
from model_assigner.core.selection import band_for, make_decision
from model_assigner.core.types import Decision, Model, Payment

# GitHub's repository roles, lowest first (override_min_permission).
ROLE_RANK = {"none": 0, "read": 1, "triage": 2, "write": 3, "maintain": 4, "admin": 5}


def sender_may_choose(
    gateway: IssueGateway, event: IssueEvent, labels_now: list[str], labels: LabelsConfig,
    needed: str,
) -> bool | None:
    """Whether this delivery's sender has the role ``needed`` of whoever
    chooses a model (``override_min_permission``, labels.yaml): asked of
    GitHub (cached), outside the store's lock, only when the sender would be
    the one choosing (a model label added, or on a new issue). None: not
    asked, or not known (dry-run)."""
    if event.action == "labeled":
        asks = bool(event.label and labels.model_from_label(event.label))
    else:  # a label on the issue as it was opened: its author's
        asks = event.action == "opened" and any(
            labels.model_from_label(n) for n in labels_now
        )
    if not event.sender or not asks:
        return None
    role = gateway.permission(event.repo, event.sender)
    if role is None:
        return None
    return ROLE_RANK.get(role, 0) >= ROLE_RANK[needed]


def model_override(
    event: IssueEvent,
    labels_now: list[str],
    state: State,
    labels: LabelsConfig,
    models: Sequence[Model],
    needed: str,
    sender_may: bool | None = None,
) -> tuple[Override | None, Reason | None]:
    """A `model:<name>` label that we did not set is a person's choice,
    when that person may choose: the label's setter is this delivery's
    sender (a `labeled` event), or the issue's author when it was on the
    issue as it was opened (an issue template may put it there), or the
    person it was honoured for before. A label with no known setter (on the
    issue without a `labeled` event naming who set it) is no one's choice.
    Returns the override, or None and why a label was not honoured
    (``needed``: the role it asks)."""
    held = state.reservations.get(event.key)
    record = state.record(event.key)
    ours = {
        held.model if held is not None and held.override_by is None else None,
        labels.model_from_label(record.label) if record and record.label else None,
    }
    chosen = [
        m for m in (labels.model_from_label(n) for n in labels_now) if m and m not in ours
    ]
    if not chosen:
        return None, None
    from_event = (
        labels.model_from_label(event.label)
        if event.action == "labeled" and event.label
        else None
    )
    model = from_event if from_event in chosen else chosen[0]
    via = "label"
    if from_event == model:
        by = event.sender
    elif held is not None and held.model == model and held.override_by:
        by, sender_may = held.override_by, True  # checked when it was set
    elif event.action == "opened":
        by, via = event.sender, "opened"
    else:
        by = None
    label = _code(labels.model_label(model))
    if by is None:
        # On the issue before this delivery, with no `labeled` event that
        # says who put it there (an issue template, an automation, a label
        # set while model-assigner was not listening): nobody's choice that
        # can be checked, so not a maintainer's choice.
        return None, reason(
            ReasonCode.OVERRIDE_REFUSED, label=label, via="unknown", by="", needed=needed,
        )
    if by == event.sender and sender_may is False:
        return None, reason(
            ReasonCode.OVERRIDE_REFUSED, label=label, via=via, by=by, needed=needed,
        )
    known = find_model(models, model) is not None
    return Override(model=model, by=by, known=known, via=via), None


def override_decision(
    assessment: Assessment,
    state: State,
    own: Decision,
    models: Sequence[Model],
    scoring: ScoringConfig,
    override: Override,
) -> Decision:
    """The decision a person's override makes: their model, charged (to the
    API budget when no subscription has room), with ``own`` (what
    model-assigner itself would choose, nothing charged) said instead."""
    instead = (
        reason(ReasonCode.INSTEAD_CHOSEN, model=own.model, payment=own.payment)
        if own.model is not None
        else reason(ReasonCode.INSTEAD_DEFERRED, because=own.reason)
    )
    band = (band_for(assessment.value, scoring) or scoring.low_value_band).name
    model = find_model(models, override.model)
    if model is None:
        return make_decision(
            assessment, None, None, band, "override",
            reason(ReasonCode.OVERRIDE_UNKNOWN_MODEL, model=override.model),
        ).model_copy(update={"instead": instead})
    t = assessment.tokens
    payment = payment_for(model, state.ledger(), t.input_tokens, t.output_tokens)
    if payment is None:
        # A person's choice is kept even when it overruns: charge the API
        # budget and say so, rather than fight the label.
        payment = Payment(
            kind="api",
            family=model.family,
            tokens=t.total,
            cost_usd=calculate_cost(model, t.input_tokens, t.output_tokens),
            remaining_budget_usd=state.api_budget.monthly_limit_usd
            - state.api_budget.spent_usd
            - calculate_cost(model, t.input_tokens, t.output_tokens),
        )
    return make_decision(
        assessment, model, payment, band, "override",
        reason(ReasonCode.OVERRIDE_SET, by=override.by or "hand"),
    ).model_copy(update={"instead": instead})

