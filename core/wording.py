"""The words of every explanation: a Reason (core/reasons.py) as text.

The one module that words decisions, for the issue comment (bot/comment.py
adds the Markdown around these sentences), the command line (``assign``,
``plan``) and the logs. Pure: text from data, nothing else; changing a
sentence touches this module and its tests (tests/core/test_wording.py),
never an algorithm.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from model_assigner.core.quota import INF
from model_assigner.core.reasons import Lever, Reason, ReasonCode
from model_assigner.core.types import Decision, Payment

Values = Mapping[str, Any]

# --- small pieces --------------------------------------------------------------


def _or_list(items: Sequence[str]) -> str:
    if len(items) <= 2:
        return " or ".join(items)
    return f"{', '.join(items[:-1])}, or {items[-1]}"


LEVER_WORDS: Mapping[Lever, str] = {
    Lever.PRIORITY: "a higher priority label",
    Lever.DEADLINE: "a nearer milestone due date",
    Lever.DEPENDANTS: "other issues depending on this one",
    Lever.PRIORITY_AND_DEADLINE:
        "a higher priority label together with a nearer milestone due date",
}


def lever_words(levers: Sequence[str]) -> list[str]:
    return [LEVER_WORDS[Lever(lever)] for lever in levers]


def quota_summary(v: Values) -> str:
    """``quotas`` ((family, tokens left), ...) and ``budget_left``: what is
    left of each, in one line."""
    parts = []
    for family, left in v["quotas"]:
        shown = "unlimited" if left == INF else f"{max(0, int(left)):,} tokens"
        parts.append(f"{family} quota {shown} left")
    parts.append(f"API budget ${max(0.0, v['budget_left']):,.2f} left")
    return ", ".join(parts)


def _usage(v: Values) -> str:
    if v["payer"] == "":
        return f"${v['usage']:,.2f} of the API budget"
    return f"{int(v['usage']):,} tokens of the {v['payer']} subscription"


def _rate(v: Values) -> str:
    if v["payer"] == "":
        return f"{v['rate']:.3g} value per dollar"
    return f"{v['rate'] * 1000:.3g} value per 1,000 tokens"


def _rule(v: Values) -> str:
    rule, tiers = v["rule"], ", ".join(v["tiers"])
    if rule == "band":
        return f"in the {v['band']} band's preferred order (tiers {tiers})"
    if rule == "downgrade":
        return f"of a lower band's tiers (downgraded from {tiers})"
    return "rated at or above the capability floor for its domain (minimize_cost's overflow)"


def _due(hours: float) -> str:
    return f"due in {hours:.1f} h" if hours >= 0 else f"overdue by {-hours:.1f} h"


# --- each code's words ---------------------------------------------------------


def _chosen(v: Values) -> str:
    position = v["position"]
    choice = "first choice" if position == 1 else f"choice #{position}"
    pays = (f"the {v['family']} subscription pays" if v["payer"] == "subscription"
            else "the API budget pays")
    return (
        f"its value, {v['value']:.1f}, puts it in the {v['band']} band "
        f"({v['band_min']:g} and up), where {v['model']} is the {choice}"
        + ("" if position == 1 else " (why not the ones before it: see the details)")
        + f"; {pays}"
    )


def _cannot_pay(v: Values) -> str:
    if v["quota_left"] is None:
        quota = f"no {v['family']} subscription"
    else:
        quota = (f"{v['family']} quota has {max(0, int(v['quota_left'])):,} tokens left, "
                 f"{v['needed']:,} needed")
    return (f"{quota}; API cost ${v['api_cost']:,.2f} is over the "
            f"${max(0.0, v['budget_left']):,.2f} budget left")


def _value_capped(v: Values) -> str:
    return (
        f"no label or deadline lifts it to {v['floor']:g}: its complexity ({v['complexity']}), "
        f"domain ({v['domain']}) and risk ({v['risk']}) cap its value at {v['cap']:.1f}; only a "
        "change to the scoring configuration would assign it"
    )


def _priced_out(v: Values) -> str:
    return (
        f"value {v['value']:.1f} does not cover the price of what it would use: "
        f"the cheapest way, {v['model']} with {_usage(v)}, is priced at "
        f"{v['price']:.1f} ({_rate(v)}). The prices keep quota and "
        f"budget for the higher-value issues expected before the reset on {v['reset']} "
        f"(learned from {text(v['basis'])})"
    )


def _covers_price(v: Values) -> str:
    priced = (
        f"priced at {v['price']:.1f} ({_rate(v)})" if v["price"] > 0
        else "free at current prices (nothing scarcer is expected before the reset)"
    )
    return (
        f"value {v['value']:.1f} covers the price of {_usage(v)}, {priced}; "
        f"{v['model']} leaves the most value after prices among the models it may use"
    )


def _price_basis(v: Values) -> str:
    if v["last"] is not None:
        basis = (f"{v['seen']} issues seen this period and the last period's issues "
                 f"from this point on ({v['last']})")
    else:
        basis = f"{v['seen']} issues seen this period"
    return f"{basis}; the reset is near, prices zero" if v["near_reset"] else basis


def _idle(v: Values) -> str:
    left = v["left"]
    room = "room without limit" if left == INF else f"{int(left):,} tokens left"
    words = (
        f"The {v['family']} subscription has {room} but is not used: its models "
        f"({', '.join(v['models'])}) are kept for higher-value work by the configured value "
        f"bands. This issue's value, {v['value']:.1f}, is in the {v['band']} band, "
        f"which allows only {' and '.join(v['tiers'])} models."
    )
    if v["floor"] is not None:
        levers = lever_words(v["levers"])
        how = f" ({' or '.join(levers)})" if levers else ""
        words += (
            f" A value of {v['floor']:g} or more would let it use them{how}; so would the "
            f"operator adding a {v['family']} model's tier to the {v['band']} "
            "band's `tiers` (`value_bands` in config/scoring.yaml)."
        )
    return words


def _override_refused(v: Values) -> str:
    if v["via"] == "unknown":  # on the issue with no `labeled` event naming its setter
        return (
            f"The `{v['label']}` label was not applied: who added it is not known (it was "
            "on the issue without a `labeled` event model-assigner received, as when an "
            "issue template or an automation sets it); choosing a model needs the "
            f"{v['needed']} role on this repository or above, so someone with it may add the "
            "label again; model-assigner chose instead"
        )
    if v["via"] == "label":
        how = f"added by {v['by']}"
    else:  # on the issue as opened, by an author who cannot set labels
        how = (f"on the issue as {v['by']} opened it, so set by an issue template or an "
               "automation, not by them")
    return (
        f"The `{v['label']}` label ({how}) was not "
        f"applied: choosing a model needs the {v['needed']} role on this repository or "
        "above; model-assigner chose instead"
    )


_WORDS: Mapping[ReasonCode, Callable[[Values], str]] = {
    # the value score's signals
    ReasonCode.COMPLEXITY_KEYWORD: lambda v: f"keyword {v['keyword']!r} in the description",
    ReasonCode.COMPLEXITY_FILES:
        lambda v: f"{v['files']} files ({v['source']}) >= {v['at_least']}",
    ReasonCode.COMPLEXITY_LOC: lambda v: f"{v['loc']} LOC ({v['source']}) > {v['above']}",
    ReasonCode.COMPLEXITY_BELOW_THRESHOLDS:
        lambda v: f"{v['files']} files, {v['loc']} LOC: below every threshold",
    ReasonCode.NO_DEADLINE: lambda v: "no deadline",
    ReasonCode.DEADLINE_WITHIN:
        lambda v: f"{_due(v['hours'])} (<= {v['limit']:g} h: {v['window']})",
    ReasonCode.DEADLINE_FLEXIBLE: lambda v: f"{_due(v['hours'])} (flexible)",
    ReasonCode.BLOCKS_OTHERS: lambda v: f"blocks other tasks ({text(v['because'])})",
    ReasonCode.SIGNAL_LABEL: lambda v: f"label {v['label']!r}",
    ReasonCode.SIGNAL_PATH_WORD: lambda v: f"workspace path word {v['word']!r}",
    ReasonCode.SIGNAL_KEYWORD: lambda v: f"{v['keyword']!r} in the description",
    ReasonCode.SIGNAL_DEFAULT: lambda v: "default",
    # the token estimate
    ReasonCode.TOKENS_BASE:
        lambda v: f"{v['complexity']}: {v['input']:,} in / {v['output']:,} out",
    ReasonCode.TOKENS_DOMAIN:
        lambda v: f"{v['domain']}: input x{v['input']:g}, output x{v['output']:g}",
    ReasonCode.TOKENS_WORKSPACE: lambda v: (
        f"workspace of {v['files']:,} files (> {v['above']:,}): input x{v['input']:g}"
        + (f", output x{v['output']:g}" if v["output"] != 1 else "")
    ),
    ReasonCode.TOKENS_CALIBRATION: lambda v: (
        f"calibration: x{v['factor']:.2f} from {v['domain_samples']} finished "
        f"{v['domain']} issues ({v['samples']} of them {v['complexity']})"
    ),
    # a model chosen
    ReasonCode.CHOSEN_IN_BAND: _chosen,
    ReasonCode.CHEAPEST_PAYABLE: lambda v: (
        f"value {v['value']:.1f} is in the {v['band']} band; no preferred model could be "
        f"paid for, so the cheapest payable model of tiers {', '.join(v['tiers'])}"
    ),
    ReasonCode.DOWNGRADED: lambda v: (
        f"value {v['value']:.1f} is in the {v['band']} band, but nothing of tiers "
        f"{', '.join(v['tiers'])} could be paid for: downgraded to {v['model']} ({v['tier']})"
    ),
    ReasonCode.FITS_SUBSCRIPTION: lambda v: (
        f"{v['model']} fits the {v['family']} subscription (value {v['value']:.1f})"
    ),
    ReasonCode.CHEAPEST_CAPABLE_API: lambda v: (
        f"no subscription can pay for a model the {v['band']} band allows; "
        f"{v['model']} is the cheapest model rated "
        f">= {v['floor']:g} for {v['domain']} that the API budget can pay for"
    ),
    # deferred
    ReasonCode.LOW_VALUE: lambda v: (
        f"value {v['value']:.1f} is below {v['floor']:g}: low-value work is deferred "
        "rather than spending tokens on it"
    ),
    ReasonCode.VALUE_LEVERS: lambda v: (
        f"a value of {v['floor']:g} or more would assign it: "
        f"{_or_list(lever_words(v['levers']))}"
    ),
    ReasonCode.VALUE_CAPPED: _value_capped,
    ReasonCode.UNAFFORDABLE: lambda v: (
        f"no model of tiers {', '.join(v['tiers'])} or below can be paid for "
        f"{v['tokens']:,} tokens: {quota_summary(v)}"
    ),
    ReasonCode.QUOTA_RESETS: lambda v: (
        "more subscription quota, a larger API budget, or the next quota reset "
        f"(subscription {', '.join(v['subscriptions']) or 'none'}, "
        f"API budget {v['budget']}) would assign it"
    ),
    # passed over
    ReasonCode.NOT_IN_CATALOG: lambda v: "not in the catalog",
    ReasonCode.WINDOW_TOO_SMALL: lambda v: (
        f"its context window of {v['window']:,} tokens cannot hold this task's "
        f"working set of {v['working_set']:,} tokens per turn"
    ),
    ReasonCode.TIER_NOT_IN_BAND: lambda v: (
        f"tier {v['tier']} is not among the {v['band']} band's tiers ({', '.join(v['tiers'])})"
    ),
    ReasonCode.CANNOT_PAY: _cannot_pay,
    ReasonCode.NOT_IN_BAND_TIERS:
        lambda v: f"not in the {v['band']} band's tiers ({', '.join(v['tiers'])})",
    ReasonCode.FIRST_SUBSCRIPTION_MODEL:
        lambda v: f"{v['taken']} comes first among the band's subscription-paid models",
    ReasonCode.ONLY_ON_API:
        lambda v: f"only on the API, while the {v['family']} subscription pays for {v['taken']}",
    ReasonCode.BELOW_CAPABILITY_FLOOR: lambda v: (
        f"rated {v['rating']:g} for {v['domain']}, below the capability floor {v['floor']:g}"
    ),
    ReasonCode.DEARER_THAN: lambda v: (
        f"dearer per token than {v['taken']}, the cheapest model rated "
        f">= {v['floor']:g} for {v['domain']}"
    ),
    ReasonCode.NOTHING_ASSIGNED: lambda v: "nothing was assigned",
    # the optimal plan
    ReasonCode.PLAN_SUBSCRIPTION: lambda v: (
        f"value {v['value']:.1f} is in the {v['band']} band; the optimal plan pays it from "
        f"the {v['payer']} subscription, and {v['model']} is the first {v['payer']} model "
        f"{_rule(v)}"
    ),
    ReasonCode.PLAN_API: lambda v: (
        f"value {v['value']:.1f} is in the {v['band']} band; the optimal plan pays it from "
        f"the API budget, and {v['model']} is the first model "
        f"{_rule(v)} that fits the budget the plan leaves"
    ),
    ReasonCode.PLAN_OTHER_SUBSCRIPTION: lambda v: (
        f"the plan pays this task from the {v['payer']} subscription, "
        f"which does not cover {v['family']} models"
    ),
    ReasonCode.PLAN_BUDGET_SHARE: lambda v: (
        f"API cost ${v['cost']:,.4f} does not fit: the plan keeps "
        f"${v['kept']:,.4f} of the budget for this task"
    ),
    ReasonCode.NO_VALUE: lambda v: f"value {v['value']:.1f}: nothing to gain from assigning it",
    ReasonCode.GIVE_IT_VALUE:
        lambda v: "a priority label, a deadline or dependants would give it value",
    ReasonCode.UNPAYABLE_ALONE: lambda v: (
        f"no model it may use can be paid for {v['tokens']:,} tokens, even alone: "
        f"{quota_summary(v)}"
    ),
    ReasonCode.MORE_QUOTA: lambda v: (
        "more subscription quota, a larger API budget, or the next quota reset would assign it"
    ),
    ReasonCode.OUTBID_BY_PLAN: lambda v: (
        f"value {v['value']:.1f}: the optimal plan spends the quota and budget it would need "
        f"({v['tokens']:,} tokens, or ${v['api_cost']:,.4f} of API) on tasks worth more "
        f"together; after the plan: {quota_summary(v)}"
    ),
    ReasonCode.PLAN_MORE_VALUE:
        lambda v: "a higher value, or more quota or budget, would let the plan include it",
    # the online strategy
    ReasonCode.COLD_START: lambda v: (
        f"too few issues seen yet to price the quota ({v['seen']} this period, "
        f"none from the last), so it is decided as minimize_cost decides: {text(v['because'])}"
    ),
    ReasonCode.PRICED_OUT: _priced_out,
    ReasonCode.PRICES_FALL: lambda v: (
        f"prices fall as the reset on {v['reset']} approaches, and the issue is decided again "
        "then; a higher priority label or a nearer milestone due date (more value), or "
        "more quota or budget, would assign it sooner"
    ),
    ReasonCode.COVERS_PRICE: _covers_price,
    ReasonCode.PRICE_BASIS: _price_basis,
    ReasonCode.NOT_ALLOWED: lambda v: "not among the models this task may use",
    ReasonCode.API_ONLY_COSTS: lambda v: (
        f"only on the API, where it would cost ${v['cost']:,.2f}; "
        f"{v['best']} leaves more value after prices"
    ),
    ReasonCode.LESS_AFTER_PRICES: lambda v: (
        f"leaves {v['net']:.1f} of value after the price of "
        f"{_usage(v)}, less than {v['best']}'s {v['best_net']:.1f}"
    ),
    # idle subscriptions
    ReasonCode.IDLE_SUBSCRIPTION: _idle,
    # a person's label
    ReasonCode.OVERRIDE_UNKNOWN_MODEL: lambda v: f"{v['model']!r} is not in the model catalog",
    ReasonCode.OVERRIDE_SET: lambda v: f"set by {v['by']} with a label",
    ReasonCode.INSTEAD_CHOSEN: lambda v: (
        f"model-assigner would have chosen `{v['model']}`, {plain_payment(v['payment'])}"
    ),
    ReasonCode.INSTEAD_DEFERRED:
        lambda v: f"model-assigner would have deferred it: {text(v['because'])}",
    ReasonCode.OVERRIDE_REFUSED: _override_refused,
}


# Every code with words (tests check none is missing).
WORDED = frozenset(_WORDS)


def text(reason: Reason) -> str:
    """The reason in words (a clause, as the comment and the CLI quote it)."""
    return _WORDS[reason.code](reason.values)


def texts(reasons: Sequence[Reason]) -> list[str]:
    return [text(r) for r in reasons]


# --- payments ------------------------------------------------------------------


def format_payment(payment: Payment | None) -> str:
    if payment is None:
        return "nothing (deferred)"
    if payment.kind == "subscription":
        left = [
            f"{value:,} tokens left {period}"
            for value, period in (
                (payment.remaining_daily, "today"),
                (payment.remaining_monthly, "this month"),
            )
            if value is not None
        ]
        detail = f" ({', '.join(left)})" if left else " (no limit)"
        return f"{payment.family} subscription, {payment.tokens:,} tokens{detail}"
    return (
        f"API budget, ${payment.cost_usd:,.2f} (${payment.remaining_budget_usd or 0.0:,.2f} left "
        "this month)"
    )


def plain_payment(payment: Payment | None) -> str:
    """What pays, in words, with what is left once it has: said once."""
    if payment is None:
        return "nothing is charged"
    if payment.kind == "subscription":
        left = [value for value in (payment.remaining_daily, payment.remaining_monthly)
                if value is not None]
        room = f" ({min(left):,} tokens left this month)" if left else ""
        return f"paid from the {payment.family} subscription{room}"
    return (f"paid from the API budget (${payment.remaining_budget_usd or 0.0:,.2f} left "
            "this month)")


def payment_sentence(decision: Decision) -> str:
    """What pays and what it costs, in one sentence."""
    payment = decision.payment
    if payment is None:
        return "Nothing is charged."
    if payment.kind == "subscription":
        left = [value for value in (payment.remaining_daily, payment.remaining_monthly)
                if value is not None]
        room = f"; {min(left):,} tokens left this month" if left else ""
        return (f"It is paid from the {payment.family} subscription, whose flat fee covers it: "
                f"no extra money (${decision.cost_usd:,.2f} at API list price{room}).")
    return (f"It is paid from the API budget: about ${decision.cost_usd:,.2f} at list price "
            f"(${payment.remaining_budget_usd or 0.0:,.2f} left this month).")


# --- a whole decision ----------------------------------------------------------


def score_rows(decision: Decision) -> list[tuple[str, str, str]]:
    """(term, value, why) rows of the value score, in the seed's formula order."""
    b = decision.breakdown
    return [
        ("priority weight", f"{b.priority_weight:g}", b.priority or "no priority label (default)"),
        ("complexity", f"x{b.complexity_multiplier:g}",
         f"{b.complexity}: {text(b.complexity_signal)}"),
        ("time bonus", f"+{b.time_bonus:g}", text(b.time_reason)),
        ("domain", f"x{b.domain_modifier:g}", f"{b.domain}: {text(b.domain_reason)}"),
        ("risk", f"x{b.risk_modifier:g}", f"{b.risk}: {text(b.risk_reason)}"),
    ]


def formula(decision: Decision) -> str:
    b = decision.breakdown
    clamp = "" if b.raw_score == b.value_score else f" -> clamped to {b.value_score:.1f}"
    return (
        f"({b.priority_weight:g} x {b.complexity_multiplier:g} + {b.time_bonus:g}) "
        f"x {b.domain_modifier:g} x {b.risk_modifier:g} = {b.raw_score:.2f}{clamp}"
    )


def adjustments(decision: Decision) -> str:
    """How the token estimate was made, one clause per step."""
    return "; ".join(texts(decision.tokens.adjustments))


def explain(decision: Decision) -> list[str]:
    """The whole decision as indented lines of text (the ``assign`` command)."""
    t = decision.tokens
    lines = [
        f"model: {decision.model or 'deferred'}",
        f"value: {decision.value_score:.1f}/100 ({decision.band} band)  {formula(decision)}",
    ]
    lines += [f"  {term:<16} {value:>6}  {why}" for term, value, why in score_rows(decision)]
    lines.append(
        f"tokens: {t.input_tokens:,} in + {t.output_tokens:,} out = {t.total:,} "
        f"({adjustments(decision)})"
    )
    if decision.model:
        lines.append(f"cost at list price: ${decision.cost_usd:,.2f}")
    lines.append(f"paid by: {format_payment(decision.payment)}")
    lines.append(f"why: {text(decision.reason)}")
    for passed in decision.passed_over:
        lines.append(f"  passed over {passed.model}: {text(passed.reason)}")
    if decision.unblock_hint:
        lines.append(f"would change it: {text(decision.unblock_hint)}")
    return lines
