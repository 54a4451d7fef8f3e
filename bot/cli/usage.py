"""Operator commands for reported usage: ``usage record``, ``usage import``,
``usage reconcile`` and ``calibration``.

They change the store the running server uses, under the same lock, and
print one line per report. The issue's comment shows the usage on its next
update (the CLI does not write to GitHub).
"""

from __future__ import annotations

import argparse
import hashlib
import json
from datetime import date, datetime
from pathlib import Path
from typing import Any

from model_assigner.bot.cli.stores import fail, now_of, open_store, read_state
from model_assigner.bot.config_files import load_engine_config
from model_assigner.bot.store.protocol import StateStore
from model_assigner.bot.store.state import State, StoreError
from model_assigner.bot.usage_intake import BadReport, parse_issue
from model_assigner.bot.usage_store import (
    ReportOutcome,
    calibration_samples,
    learned_table,
    record_report,
)
from model_assigner.core.calibration import learn
from model_assigner.core.config import EngineConfig
from model_assigner.core.loader import ConfigError
from model_assigner.core.quota import add_months
from model_assigner.core.reconcile import Difference, UsageRow, compare, provider_rows
from model_assigner.core.types import as_utc
from model_assigner.core.usage import TokenUsage, UsageReport
from model_assigner.core.usage_parse import UsageParseError, parse_text


def _engine(args: argparse.Namespace) -> EngineConfig:
    from model_assigner.bot.settings import SettingsError, load_settings

    try:
        folder = Path(args.config) if args.config else load_settings().config_dir
        return load_engine_config(folder)
    except (SettingsError, ConfigError) as exc:
        raise fail(str(exc)) from None


def _issue(text: str | None, where: str) -> tuple[str, int]:
    try:
        return parse_issue(text, None)
    except BadReport:
        raise fail(f"{where}: expected OWNER/REPO#N, got {text!r}") from None


def _record(
    store: StateStore, engine: EngineConfig, items: list[tuple[str, UsageReport]], now: datetime
) -> list[ReportOutcome]:

    def change(state: State) -> list[ReportOutcome]:
        return [record_report(state, key, report, engine.models, now) for key, report in items]

    try:
        with store.transaction(now) as state:
            return change(state)
    except (StoreError, ValueError) as exc:
        raise fail(str(exc)) from None


def _print(outcomes: list[ReportOutcome], as_json: bool) -> None:
    if as_json:
        print(json.dumps([
            {"issue": o.issue, "status": o.status,
             "charged": [{"model": c.model, "paid_by": c.payment.label,
                          "tokens": c.payment.tokens, "cost_usd": round(c.payment.cost_usd, 6),
                          "list_cost_usd": round(c.list_cost_usd, 6), "note": c.note}
                         for c in o.charges]}
            for o in outcomes
        ], indent=2))
        return
    for outcome in outcomes:
        if outcome.status == "charged":
            paid = ", ".join(
                f"{c.payment.tokens:,} tokens of {c.model} to {c.payment.label}"
                + (f" (${c.payment.cost_usd:,.4f})" if c.payment.kind == "api" else "")
                for c in outcome.charges
            )
            print(f"{outcome.issue}: charged {paid}")
            for charge in outcome.charges:
                if charge.note:
                    print(f"  note: {charge.note}")
        elif outcome.status == "pending":
            print(f"{outcome.issue}: kept; charged once the issue has a decision")
        else:
            print(f"{outcome.issue}: this run was already recorded; nothing changed")


def cmd_record(args: argparse.Namespace) -> int:
    repo, number = _issue(args.issue, "ISSUE")
    try:
        line = TokenUsage(
            model=args.model, input_tokens=args.input, output_tokens=args.output,
            cache_creation_input_tokens=args.cache_write, cache_read_input_tokens=args.cache_read,
            reported_cost_usd=args.cost,
        )
    except ValueError as exc:
        raise fail(f"usage record: {str(exc).splitlines()[-2].strip()}") from None
    key = f"{repo}#{number}"
    run = args.run or "manual-" + hashlib.sha256(
        json.dumps([key, line.model_dump()], sort_keys=True).encode()
    ).hexdigest()[:16]
    try:
        report = UsageReport(run_id=run, lines=[line], source="operator")
    except ValueError:
        raise fail(f"--run: not a run id: {args.run!r}") from None
    store, engine = open_store(args), _engine(args)
    _print(_record(store, engine, [(key, report)], now_of(args)), args.json)
    return 0


def cmd_import(args: argparse.Namespace) -> int:
    path = Path(args.file)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise fail(f"{path}: cannot read ({getattr(exc, 'strerror', None) or exc})") from None
    try:
        parsed = parse_text(text)
    except UsageParseError as exc:
        raise fail(f"{path}: {exc}") from None
    items = []
    for index, document in enumerate(parsed):
        where = f"{path}" + (f" report {index + 1}" if len(parsed) > 1 else "")
        issue = args.issue or document.issue
        if not isinstance(issue, str):
            raise fail(f"{where}: no issue: pass --issue OWNER/REPO#N")
        repo, number = _issue(issue, f"{where}: issue")
        try:
            report = document.report(args.run if len(parsed) == 1 else None, source="import")
        except UsageParseError as exc:
            raise fail(f"{where}: {exc}") from None
        items.append((f"{repo}#{number}", report))
    store, engine = open_store(args), _engine(args)
    _print(_record(store, engine, items, now_of(args)), args.json)
    return 0


def store_rows(state: State) -> list[UsageRow]:
    """The reported usage the store charged, per run's end day and model."""
    return [
        UsageRow(as_utc(run.ended_at).date(), charge.model, line)
        for record in state.usage.values()
        for run in record.charged_runs
        for line, charge in zip(run.lines, run.charges, strict=False)
    ]


def _month(text: str | None) -> tuple[date, date] | None:
    if text is None:
        return None
    try:
        first = datetime.strptime(text, "%Y-%m").date()
    except ValueError:
        raise fail(f"--month: expected YYYY-MM, got {text!r}") from None
    following = add_months(datetime(first.year, first.month, 1), 1).date()
    return first, following


def cmd_reconcile(args: argparse.Namespace) -> int:
    path = Path(args.file)
    try:
        raw = path.read_bytes()
        provider, rows = provider_rows(json.loads(raw))
    except OSError as exc:
        raise fail(f"{path}: cannot read ({exc.strerror or exc})") from None
    except (ValueError, UsageParseError) as exc:
        raise fail(f"{path}: {exc}") from None
    store, engine = open_store(args), _engine(args)
    state = read_state(store)
    window = _month(args.month)
    differences = [
        d for d in compare(store_rows(state), rows, engine.models)
        if window is None or window[0] <= d.day < window[1]
    ]
    if not args.json:
        _print_differences(provider, differences)
    applied = _apply(store, raw, differences, now_of(args)) if args.apply else None
    if args.json:
        print(json.dumps({
            "provider": provider,
            "rows": [
                {"day": d.day.isoformat(), "model": d.model, "store_tokens": d.store_tokens,
                 "provider_tokens": d.provider_tokens, "difference_tokens": d.tokens,
                 "difference_usd": None if d.usd is None else round(d.usd, 6)}
                for d in differences
            ],
            "applied_usd": applied,
        }, indent=2))
    elif applied is not None:
        print(f"applied: API budget {'+' if applied >= 0 else '-'}${abs(applied):,.4f}")
    return 0


def _print_differences(provider: str, differences: list[Difference]) -> None:
    print(f"{'day':<11} {'model':<28} {'store':>12} {provider:>12} {'difference':>12} "
          f"{'at list price':>14}")
    for d in differences:
        usd = "-" if d.usd is None else f"{'+' if d.usd >= 0 else '-'}${abs(d.usd):,.4f}"
        print(f"{d.day.isoformat():<11} {d.model[:28]:<28} {d.store_tokens:>12,} "
              f"{d.provider_tokens:>12,} {d.tokens:>+12,} {usd:>14}")
    total = sum(d.usd or 0.0 for d in differences)
    print(f"total difference at list price: {'+' if total >= 0 else '-'}${abs(total):,.4f} "
          "(nothing changed; --apply charges it to the API budget)")


def _apply(store: StateStore, raw: bytes, differences: list[Difference], now: datetime) -> float:
    """Charge the priced difference of the current budget month to the API
    budget, once per export (its digest is remembered)."""
    digest = "reconcile:" + hashlib.sha256(raw).hexdigest()[:32]
    try:
        with store.transaction(now) as state:
            if digest in state.reconciled:
                raise fail("this export was already applied; nothing changed")
            start = add_months(state.api_budget.reset_date, -1).date()
            delta = sum(d.usd or 0.0 for d in differences if d.day >= start)
            state.api_budget.spent_usd = max(0.0, state.api_budget.spent_usd + delta)
            state.reconciled[digest] = now
    except StoreError as exc:
        raise fail(str(exc)) from None
    return delta


def calibration_report(state: State, engine: EngineConfig) -> dict[str, Any]:
    settings = engine.scoring.calibration
    table = learned_table(state, engine.scoring) if settings.enabled else learn(
        calibration_samples(state), settings)
    return {
        "enabled": settings.enabled,
        "finished_issues": len(calibration_samples(state)),
        "factors": {key: entry.model_dump() for key, entry in table.items()},
    }


def cmd_calibration(args: argparse.Namespace) -> int:
    store, engine = open_store(args), _engine(args)
    state = read_state(store) if store.exists() else None
    report: dict[str, Any] = calibration_report(state, engine) if state is not None else {
        "enabled": engine.scoring.calibration.enabled, "finished_issues": 0, "factors": {}}
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    status = "on" if report["enabled"] else "OFF (calibration.enabled): shown, not used"
    print(f"calibration {status}; {report['finished_issues']} finished issues reported usage")
    if not report["factors"]:
        print("no factors yet: estimates are the formula's (x1)")
        return 0
    print(f"{'complexity':<16} {'domain':<16} {'factor':>7} {'issues':>7} {'in domain':>10}")
    for key, entry in report["factors"].items():
        complexity, domain = key.split("/", 1)
        print(f"{complexity:<16} {domain:<16} {'x' + format(entry['factor'], '.2f'):>7} "
              f"{entry['samples']:>7} {entry['domain_samples']:>10}")
    return 0


def add_commands(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    def common(parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--state", help="store file (default: MODEL_ASSIGNER_STATE)")
        parser.add_argument("--config", help="config folder (default: MODEL_ASSIGNER_CONFIG)")
        parser.add_argument("--json", action="store_true", help="print JSON instead of text")
        parser.add_argument("--now", help="the clock, ISO 8601 (default: the current UTC time)")

    usage = sub.add_parser("usage", help="record, import or reconcile what issues really used")
    actions = usage.add_subparsers(dest="usage_action", required=True, metavar="ACTION")

    record = actions.add_parser("record", help="one run's tokens for an issue")
    record.add_argument("issue", metavar="OWNER/REPO#N", help="the issue the run worked on")
    record.add_argument("--input", type=int, required=True, help="uncached input tokens")
    record.add_argument("--output", type=int, required=True, help="output tokens")
    record.add_argument("--cache-read", type=int, default=0, help="cache-read input tokens")
    record.add_argument("--cache-write", type=int, default=0, help="cache-creation input tokens")
    record.add_argument("--model", help="the model used (default: the one assigned)")
    record.add_argument("--run", help="run or session id (the same id counts once)")
    record.add_argument("--cost", type=float, help="the cost the agent reported, USD (shown)")
    common(record)
    record.set_defaults(handler=cmd_record)

    imported = actions.add_parser(
        "import", help="a Claude Code result or execution file, Codex --json events, "
                       "or our report JSON"
    )
    imported.add_argument("file", help="the file to import")
    imported.add_argument("--issue", metavar="OWNER/REPO#N", help="when the file names none")
    imported.add_argument("--run", help="when the file has no session id")
    common(imported)
    imported.set_defaults(handler=cmd_import)

    reconcile = actions.add_parser(
        "reconcile", help="compare the store with an Anthropic or OpenAI usage export"
    )
    reconcile.add_argument("file", help="the provider's usage export (JSON)")
    reconcile.add_argument("--month", help="YYYY-MM (default: every day in the export)")
    reconcile.add_argument("--apply", action="store_true",
                           help="charge the difference of this budget month to the API budget")
    common(reconcile)
    reconcile.set_defaults(handler=cmd_reconcile)

    calibration = sub.add_parser(
        "calibration", help="the learned token-estimate factors, with sample counts"
    )
    common(calibration)
    calibration.set_defaults(handler=cmd_calibration)
