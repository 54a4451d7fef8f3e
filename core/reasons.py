"""Why the engine decided what it did, as data: a code and the values it names.

The algorithms (core/scoring.py, core/tokens.py, core/selection.py,
core/greedy.py, core/optimal.py, core/online.py) say *why* with a Reason;
they never build a sentence. core/wording.py is the one place that turns a
Reason into the words of the issue comment, the command line and the logs,
so a sentence changes in one module, and tests of an algorithm assert on
codes and numbers that do not change with the wording.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class ReasonCode(StrEnum):
    """Every why the engine can give. The value is the code's stable name (in
    logs and JSON), never a sentence."""

    # -- the value score's signals (core/scoring.py) --
    COMPLEXITY_KEYWORD = "complexity_keyword"  # keyword
    COMPLEXITY_FILES = "complexity_files"  # files, source, at_least
    COMPLEXITY_LOC = "complexity_loc"  # loc, source, above
    COMPLEXITY_BELOW_THRESHOLDS = "complexity_below_thresholds"  # files, loc
    NO_DEADLINE = "no_deadline"
    DEADLINE_WITHIN = "deadline_within"  # hours (negative: overdue), limit, window
    DEADLINE_FLEXIBLE = "deadline_flexible"  # hours
    BLOCKS_OTHERS = "blocks_others"  # because: the deadline's reason
    SIGNAL_LABEL = "signal_label"  # label
    SIGNAL_PATH_WORD = "signal_path_word"  # word
    SIGNAL_KEYWORD = "signal_keyword"  # keyword
    SIGNAL_DEFAULT = "signal_default"
    # -- the token estimate's adjustments (core/tokens.py) --
    TOKENS_BASE = "tokens_base"  # complexity, input, output
    TOKENS_DOMAIN = "tokens_domain"  # domain, input, output (factors)
    TOKENS_WORKSPACE = "tokens_workspace"  # files, above, input, output (factors)
    # factor, domain_samples, domain, samples, complexity
    TOKENS_CALIBRATION = "tokens_calibration"
    # -- a model chosen (core/selection.py, core/greedy.py) --
    CHOSEN_IN_BAND = "chosen_in_band"  # value, band, band_min, model, position, payer, family
    CHEAPEST_PAYABLE = "cheapest_payable"  # value, band, tiers
    DOWNGRADED = "downgraded"  # value, band, tiers, model, tier
    FITS_SUBSCRIPTION = "fits_subscription"  # model, family, value
    CHEAPEST_CAPABLE_API = "cheapest_capable_api"  # band, model, floor, domain
    # -- deferred, and what would change it --
    LOW_VALUE = "low_value"  # value, floor
    VALUE_LEVERS = "value_levers"  # floor, levers (Lever names)
    VALUE_CAPPED = "value_capped"  # floor, complexity, domain, risk, cap
    UNAFFORDABLE = "unaffordable"  # tiers, tokens, quotas, budget_left
    QUOTA_RESETS = "quota_resets"  # subscriptions (ISO dates), budget (ISO date)
    # -- a preferred model passed over --
    NOT_IN_CATALOG = "not_in_catalog"
    WINDOW_TOO_SMALL = "window_too_small"  # window, working_set
    TIER_NOT_IN_BAND = "tier_not_in_band"  # tier, band, tiers
    # family, quota_left (None: no subscription), needed, api_cost, budget_left
    CANNOT_PAY = "cannot_pay"
    NOT_IN_BAND_TIERS = "not_in_band_tiers"  # band, tiers
    FIRST_SUBSCRIPTION_MODEL = "first_subscription_model"  # taken
    ONLY_ON_API = "only_on_api"  # family, taken
    BELOW_CAPABILITY_FLOOR = "below_capability_floor"  # rating, domain, floor
    DEARER_THAN = "dearer_than"  # taken, floor, domain
    NOTHING_ASSIGNED = "nothing_assigned"
    # -- the optimal plan (core/optimal.py) --
    PLAN_SUBSCRIPTION = "plan_subscription"  # value, band, payer, model, rule, tiers
    PLAN_API = "plan_api"  # value, band, model, rule, tiers
    PLAN_OTHER_SUBSCRIPTION = "plan_other_subscription"  # payer, family
    PLAN_BUDGET_SHARE = "plan_budget_share"  # cost, kept
    NO_VALUE = "no_value"  # value
    GIVE_IT_VALUE = "give_it_value"
    UNPAYABLE_ALONE = "unpayable_alone"  # tokens, quotas, budget_left
    MORE_QUOTA = "more_quota"
    OUTBID_BY_PLAN = "outbid_by_plan"  # value, tokens, api_cost, quotas, budget_left
    PLAN_MORE_VALUE = "plan_more_value"
    # -- the online strategy (core/online.py) --
    COLD_START = "cold_start"  # seen, because: the minimize_cost reason
    PRICED_OUT = "priced_out"  # value, model, payer, usage, price, rate, reset, basis
    PRICES_FALL = "prices_fall"  # reset
    COVERS_PRICE = "covers_price"  # value, model, payer, usage, price, rate
    PRICE_BASIS = "price_basis"  # seen, last (None: no last period), near_reset
    NOT_ALLOWED = "not_allowed"
    API_ONLY_COSTS = "api_only_costs"  # cost, best
    LESS_AFTER_PRICES = "less_after_prices"  # net, payer, usage, best, best_net
    # -- a subscription with room left unused (core/idle.py) --
    # family, left, models, value, band, tiers, floor, levers
    IDLE_SUBSCRIPTION = "idle_subscription"
    # -- a person's model label (bot/handling/override.py) --
    OVERRIDE_UNKNOWN_MODEL = "override_unknown_model"  # model
    OVERRIDE_SET = "override_set"  # by
    INSTEAD_CHOSEN = "instead_chosen"  # model, payment
    INSTEAD_DEFERRED = "instead_deferred"  # because
    OVERRIDE_REFUSED = "override_refused"  # label, via (label, opened, unknown), by, needed


class Lever(StrEnum):
    """What a person could change to lift a task's value."""

    PRIORITY = "priority"
    DEADLINE = "deadline"
    DEPENDANTS = "dependants"
    PRIORITY_AND_DEADLINE = "priority_and_deadline"


@dataclass(frozen=True)
class Reason:
    """One why: ``code`` says which, ``values`` the numbers and names it
    quotes (plain data: numbers, strings, tuples of them, a nested Reason
    under ``because``, a Payment). Compare codes and values in tests;
    render with core.wording.text."""

    code: ReasonCode
    values: Mapping[str, Any] = field(default_factory=dict)


def reason(code: ReasonCode, **values: Any) -> Reason:
    """``Reason(code, values)``, the values named as keywords."""
    return Reason(code, values)
