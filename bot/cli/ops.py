"""Operator commands: ``quota``, ``quota reset``, ``reservations``, ``state``.

They work on the same store file as the running server, under the same lock,
so they are safe while it runs. Reads never write; a corrupt store is reported
and left exactly as it is.
"""

from __future__ import annotations

import argparse
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from model_assigner.bot.backends import describe_store
from model_assigner.bot.cli.stores import fail, now_of, open_store, read_state
from model_assigner.bot.store.codec import parse_state
from model_assigner.bot.store.files import write_atomically
from model_assigner.bot.store.json_store import Store
from model_assigner.bot.store.protocol import StateStore
from model_assigner.bot.store.state import State, StoreError, apply_resets
from model_assigner.core.quota import (
    INF,
    get_remaining_monthly_budget,
    remaining_daily,
    remaining_monthly,
)


def _money(value: Any) -> Any:
    """Floats rounded to the micro-dollar, everywhere in a JSON document."""
    if isinstance(value, float):
        return round(value, 6) + 0.0
    if isinstance(value, dict):
        return {key: _money(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_money(item) for item in value]
    return value


def _limit(value: int | None) -> str:
    return "unlimited" if value is None else f"{value:,}"


def _left(value: float) -> str:
    return "unlimited" if value == INF else f"{int(value):,}"


def quota_report(state: State) -> dict[str, Any]:
    families = {}
    for family, sub in state.subscriptions.items():
        held = [r for r in state.reservations.values() if r.payment.kind == "subscription"
                and r.payment.family == family]
        families[family] = {
            "tokens_used_today": sub.tokens_used_today,
            "tokens_used_month": sub.tokens_used_month,
            "token_limit_daily": sub.token_limit_daily,
            "token_limit_monthly": sub.token_limit_monthly,
            "remaining_daily": None if remaining_daily(sub) == INF else int(remaining_daily(sub)),
            "remaining_monthly": None
            if remaining_monthly(sub) == INF
            else int(remaining_monthly(sub)),
            "usage_day": sub.usage_day.isoformat() if sub.usage_day else None,
            "next_daily_reset": None,
            "reset_date": sub.reset_date.isoformat(),
            "reservations": len(held),
            "reserved_tokens": sum(r.tokens for r in held),
        }
        if sub.usage_day:
            families[family]["next_daily_reset"] = (
                datetime.combine(sub.usage_day + timedelta(days=1), datetime.min.time(), UTC)
            ).isoformat()
    api_held = [r for r in state.reservations.values() if r.payment.kind == "api"]
    from model_assigner.bot.usage_store import usage_summary

    return {
        "usage": usage_summary(state),
        "subscriptions": families,
        "api_budget": {
            "monthly_limit_usd": state.api_budget.monthly_limit_usd,
            "spent_usd": round(state.api_budget.spent_usd, 6),
            "remaining_usd": round(get_remaining_monthly_budget(state.api_budget), 6),
            "reset_date": state.api_budget.reset_date.isoformat(),
            "reservations": len(api_held),
            "reserved_usd": round(sum(r.cost_usd for r in api_held), 6),
        },
    }


def cmd_quota(args: argparse.Namespace) -> int:
    store = open_store(args)
    if args.action == "reset":
        return quota_reset(store, args.family, now_of(args))
    # what the App would see now: the resets due at --now applied (not saved)
    state = read_state(store, args).model_copy(deep=True)
    apply_resets(state, now_of(args))
    report = quota_report(state)
    if args.family is not None:
        if args.family not in report["subscriptions"]:
            raise fail(f"--family: no subscription {args.family!r} "
                        f"(have: {', '.join(report['subscriptions']) or 'none'})")
        report["subscriptions"] = {args.family: report["subscriptions"][args.family]}
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    print(f"{'family':<12} {'today':>12} {'daily limit':>12} {'month':>12} {'monthly limit':>14} "
          f"{'left':>12} {'reserved':>10}  next monthly reset")
    for family, row in report["subscriptions"].items():
        left = min(
            row["remaining_daily"] if row["remaining_daily"] is not None else INF,
            row["remaining_monthly"] if row["remaining_monthly"] is not None else INF,
        )
        print(
            f"{family:<12} {row['tokens_used_today']:>12,} {_limit(row['token_limit_daily']):>12} "
            f"{row['tokens_used_month']:>12,} {_limit(row['token_limit_monthly']):>14} "
            f"{_left(left):>12} {row['reservations']:>10}  {row['reset_date']}"
        )
    api = report["api_budget"]
    print(
        f"\nAPI budget: ${api['spent_usd']:,.2f} of ${api['monthly_limit_usd']:,.2f} spent, "
        f"${api['remaining_usd']:,.2f} left, {api['reservations']} reservation"
        f"{'' if api['reservations'] == 1 else 's'}; "
        f"resets {api['reset_date']}"
    )
    usage = report["usage"]
    if usage["issues_reported"]:
        count = usage["issues_reported"]
        print(f"\nEstimated vs actual this month, {count} issue{'' if count == 1 else 's'} "
              "that reported usage:")
        for payer, row in usage["by_payer"].items():
            print(f"  {payer:<24} estimated {row['estimated_tokens']:>12,}  "
                  f"actual {row['actual_tokens']:>12,} tokens")
        print(f"  {'API dollars':<24} estimated ${usage['estimated_api_usd']:>11,.2f}  "
              f"actual ${usage['actual_api_usd']:>11,.2f}")
    return 0


def quota_reset(store: StateStore, family: str | None, now: datetime) -> int:
    try:
        with store.transaction(now) as state:
            if family is not None and family not in state.subscriptions:
                raise fail(f"--family: no subscription {family!r} "
                            f"(have: {', '.join(state.subscriptions) or 'none'})")
            for name, sub in state.subscriptions.items():
                if family is None or name == family:
                    sub.tokens_used_today = 0
                    sub.tokens_used_month = 0
            if family is None:
                state.api_budget.spent_usd = 0.0
    except StoreError as exc:
        raise fail(str(exc)) from None
    print(f"reset usage of {family or 'every subscription and the API budget'}")
    return 0


def cmd_reservations(args: argparse.Namespace) -> int:
    state = read_state(open_store(args), args)
    rows = sorted(state.reservations.items())
    if args.json:
        print(json.dumps(_money({k: r.model_dump(mode="json") for k, r in rows}), indent=2))
        return 0
    if not rows:
        print("no reservations")
        return 0
    print(f"{'issue':<40} {'model':<15} {'tokens':>10} {'cost':>9}  paid by      since")
    for key, r in rows:
        print(f"{key:<40} {r.model:<15} {r.tokens:>10,} {'$' + format(r.cost_usd, ',.2f'):>9}  "
              f"{r.payment.label:<12} {r.charged_at.isoformat()}"
              + (f"  (override by {r.override_by or 'hand'})" if r.override_by is not None else ""))
    return 0


def cmd_state(args: argparse.Namespace) -> int:
    if args.action == "check" and args.file is not None:
        raise fail(f"state check: takes no FILE (got {args.file!r})")
    store = open_store(args)
    name = describe_store(store)
    if args.action == "migrate":
        from model_assigner.bot.cli.db import migrate_state

        return migrate_state(args, store)
    if args.action == "check":
        try:
            exists = store.exists()
            if exists or store.kind == "file":
                store.check()
        except StoreError as exc:
            raise fail(f"invalid store: {exc}") from None
        if not exists:
            print(f"{name}: does not exist yet (it is created on the first delivery)")
        else:
            print(f"{name}: valid")
        return 0
    if not args.file:
        raise fail(f"state {args.action}: FILE is required")
    if args.action == "backup":
        target = Path(args.file)
        if isinstance(store, Store):  # the document with its journal's records
            try:
                text = store.export_text()
            except StoreError as exc:
                raise fail(f"not backed up: {exc}") from None
        else:  # the database's rows as the JSON store's document: portable
            from model_assigner.bot.cli.db import export_text

            text = export_text(store)
        try:
            write_atomically(target, text)
        except OSError as exc:
            raise fail(f"backup to {target}: {exc.strerror or exc}") from None
        print(f"backed up {name} to {target}")
        return 0
    # restore
    source = Path(args.file)
    try:
        text = source.read_text(encoding="utf-8")
    except OSError as exc:
        raise fail(f"{source}: cannot read ({exc.strerror or exc})") from None
    try:
        state = parse_state(text, str(source))
    except StoreError as exc:
        raise fail(f"not restored: {exc}") from None
    if isinstance(store, Store):  # the document written, the journal started afresh
        try:
            store.replace(state)
        except StoreError as exc:
            raise fail(f"not restored: {exc}") from None
    else:
        from model_assigner.bot.cli.db import restore_into

        restore_into(store, state)
    print(f"restored {name} from {source}")
    return 0


def add_commands(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    def common(parser: argparse.ArgumentParser) -> None:
        parser.add_argument(
            "--state", help="store file or postgresql:// URL (default: MODEL_ASSIGNER_STATE)"
        )
        parser.add_argument("--config", help="config folder (default: MODEL_ASSIGNER_CONFIG)")
        parser.add_argument(
            "--now", help="the clock for resets, ISO 8601 (default: the current UTC time)"
        )

    quota = sub.add_parser("quota", help="quota used and left per family; `quota reset`")
    quota.add_argument("action", nargs="?", choices=["show", "reset"], default="show",
                       help="show (default) or reset the usage counters")
    quota.add_argument("--family", help="only this subscription (show and reset)")
    quota.add_argument("--json", action="store_true", help="print JSON instead of a table")
    common(quota)
    quota.set_defaults(handler=cmd_quota)

    reservations = sub.add_parser("reservations", help="which issues hold which tokens")
    reservations.add_argument("--json", action="store_true",
                              help="print JSON (issue -> reservation) instead of a table")
    common(reservations)
    reservations.set_defaults(handler=cmd_reservations)

    state = sub.add_parser(
        "state", help="check, back up, restore the store, or copy it to another (migrate --to)"
    )
    state.add_argument("action", choices=["check", "backup", "restore", "migrate"],
                       help="check the store, back it up to FILE, restore it from FILE, "
                       "or copy it into an empty store (--to)")
    state.add_argument("file", nargs="?", help="backup target / restore source")
    state.add_argument(
        "--to", help="with migrate: the empty store to copy into (postgresql:// URL or file)"
    )
    common(state)
    state.set_defaults(handler=cmd_state)

