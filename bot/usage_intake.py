"""Usage reports coming in: from a workflow (POST /usage) or from a comment.

Both end in ``UsageIntake.submit``: under the issue's lock, the run is
recorded and charged in one store transaction (bot/usage_store.py), then the
bot's comment on the issue gets its usage section: through the durable queue
and the installation's rate policy (bot/usage_writeback.py), never by a
GitHub write inside the request. A report is never lost to GitHub failing
afterwards: the queue retries the comment, and a decision renders it too.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from model_assigner.bot.github.oidc import (
    GITHUB_ISSUER,
    GITHUB_JWKS_URL,
    OidcRejected,
    OidcVerifier,
)
from model_assigner.bot.handling.event import REPO_NAME, Outcome
from model_assigner.bot.issue_task import issue_key
from model_assigner.bot.locks import IssueLocks
from model_assigner.bot.settings import SettingsError, redacted_url
from model_assigner.bot.store.protocol import StateStore
from model_assigner.bot.store.state import State
from model_assigner.bot.usage_store import ReportOutcome, TooManyReports, record_report
from model_assigner.core.types import Model
from model_assigner.core.usage import UsageReport
from model_assigner.core.usage_parse import UsageParseError, our_report

log = logging.getLogger("model_assigner.usage")

# The hidden marker a reporting comment carries: <!-- model-assigner:usage-report {...} -->
REPORT_MARKER = "<!-- model-assigner:usage-report"
MAX_REPORT_CHARS = 64 * 1024
MAX_ISSUE_NUMBER = 2**31 - 1  # GitHub's issue numbers are 32-bit


@dataclass(frozen=True)
class UsageSettings:
    """MODEL_ASSIGNER_OIDC_AUDIENCE (unset: POST /usage is off), the JWKS URL
    and issuer (GitHub's by default), and the logins whose comments may
    carry usage (MODEL_ASSIGNER_USAGE_COMMENT_LOGINS, comma-separated)."""

    oidc_audience: str | None
    oidc_jwks_url: str = GITHUB_JWKS_URL
    oidc_issuer: str = GITHUB_ISSUER
    comment_logins: frozenset[str] = frozenset()


def load_usage_settings(env: Mapping[str, str] | None = None) -> UsageSettings:
    env = os.environ if env is None else env
    url = env.get("MODEL_ASSIGNER_OIDC_JWKS_URL", "").strip() or GITHUB_JWKS_URL
    if not url.startswith(("https://", "http://")) or " " in url:
        raise SettingsError("MODEL_ASSIGNER_OIDC_JWKS_URL: must be an http(s) URL, got "
                            f"{redacted_url(url)!r}")
    if redacted_url(url) != url:
        # A user or password in it would be logged with every fetch error (and
        # urllib cannot send them: it reads "pass@host" as a port).
        raise SettingsError("MODEL_ASSIGNER_OIDC_JWKS_URL: must not carry a user or password, "
                            f"got {redacted_url(url)!r}")
    logins = env.get("MODEL_ASSIGNER_USAGE_COMMENT_LOGINS", "")
    return UsageSettings(
        oidc_audience=env.get("MODEL_ASSIGNER_OIDC_AUDIENCE", "").strip() or None,
        oidc_jwks_url=url,
        oidc_issuer=env.get("MODEL_ASSIGNER_OIDC_ISSUER", "").strip() or GITHUB_ISSUER,
        comment_logins=frozenset(name.strip() for name in logins.split(",") if name.strip()),
    )


class BadReport(ValueError):
    """A report we cannot take: ``status`` is its 4xx."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def _number(text: str) -> bool:
    if not (text.isascii() and text.isdigit() and len(text) <= 10):
        return False
    return 0 < int(text) <= MAX_ISSUE_NUMBER


def parse_issue(value: object, repository: str | None) -> tuple[str, int]:
    """``OWNER/REPO#N``, or a bare number in ``repository``."""
    if type(value) is int and 0 < value <= MAX_ISSUE_NUMBER and repository:
        return repository, value
    if isinstance(value, str) and "#" in value:
        repo, _, number = value.rpartition("#")
        if REPO_NAME.fullmatch(repo) and _number(number):
            return repo, int(number)
    if isinstance(value, str) and _number(value) and repository:
        return repository, int(value)
    raise BadReport(400, "issue: expected OWNER/REPO#N or an issue number")


class UsageIntake:
    def __init__(
        self,
        store: StateStore,
        models: Sequence[Model],
        issue_locks: IssueLocks,
        clock: Callable[[], datetime],
        settings: UsageSettings,
        installed: Callable[[str], bool],
        update_comment: Callable[[str, int, int | None], str],
        verifier: OidcVerifier | None = None,
        installation_of: Callable[[str], int | None] = lambda _repo: None,
    ) -> None:
        """``update_comment(repo, number, installation)`` puts the usage into
        the bot's comment, or queues that: "queued", "updated", "none" (no
        comment, or nothing to write to), "failed"."""
        self.store = store
        self.models = models
        self.issue_locks = issue_locks
        self.clock = clock
        self.settings = settings
        self.installed = installed
        self.update_comment = update_comment
        self.installation_of = installation_of
        self.verifier = verifier
        if verifier is None and settings.oidc_audience:
            self.verifier = OidcVerifier(
                settings.oidc_audience, settings.oidc_jwks_url, settings.oidc_issuer
            )

    # -- POST /usage --------------------------------------------------------

    def post(self, authorization: str | None, body: bytes) -> Outcome:
        if self.verifier is None:
            return Outcome(404, {"error": "usage reports over OIDC are not enabled "
                                          "(MODEL_ASSIGNER_OIDC_AUDIENCE is unset)"})
        scheme, _, token = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return Outcome(401, {"error": "missing Authorization: Bearer <OIDC token>"})
        try:
            who = self.verifier.verify(token.strip())
        except OidcRejected as exc:
            return Outcome(exc.status, {"error": str(exc)})
        try:
            document = json.loads(body)
        except (ValueError, UnicodeDecodeError):
            return Outcome(400, {"error": "body is not JSON"})
        if not isinstance(document, dict):
            return Outcome(400, {"error": "body is not a JSON object"})
        try:
            parsed = our_report(document)
            repo, number = parse_issue(parsed.issue, who.repository)
            if repo.lower() != who.repository.lower():
                raise BadReport(
                    403, f"the token is for {who.repository}, the report for {repo}"
                )
            if not self.installed(who.repository):
                raise BadReport(403, f"model-assigner is not installed on {who.repository}")
            run = f"gha:{who.run_id}:{who.run_attempt}"
            if parsed.run_id:
                run += f":{parsed.run_id}"
            report = parsed.report(run, source="workflow")
        except (UsageParseError, BadReport) as exc:
            status = exc.status if isinstance(exc, BadReport) else 400
            return Outcome(status, {"error": str(exc)})
        # The repository's own name, as GitHub spells it (the key of its issues).
        token_key = f"oidc:{who.token_id}" if who.token_id else None
        return self.submit(who.repository, number, report, token_key,
                           self.installation_of(who.repository))

    # -- issue_comment ------------------------------------------------------

    def comment_event(self, delivery: str | None, payload: Mapping[str, Any]) -> Outcome:
        comment = payload.get("comment")
        issue = payload.get("issue")
        repository = payload.get("repository")
        if not isinstance(comment, Mapping) or not isinstance(issue, Mapping) or not isinstance(
            repository, Mapping
        ):
            return Outcome(400, {"error": "not an issue_comment payload"})
        if payload.get("action") not in ("created", "edited"):
            return Outcome(202, {"status": "ignored", "reason": "comment not created or edited"})
        text = comment.get("body")
        if not isinstance(text, str) or REPORT_MARKER not in text:
            return Outcome(202, {"status": "ignored", "reason": "no usage marker"})
        user = comment.get("user")
        login = user.get("login") if isinstance(user, Mapping) else None
        if login not in self.settings.comment_logins:
            return Outcome(
                202, {"status": "ignored", "reason": "usage marker from a login not listed in "
                                                     "MODEL_ASSIGNER_USAGE_COMMENT_LOGINS"}
            )
        repo, number, comment_id = (
            repository.get("full_name"), issue.get("number"), comment.get("id")
        )
        if not isinstance(repo, str) or not REPO_NAME.fullmatch(repo) or type(number) is not int:
            return Outcome(400, {"error": "not an issue_comment payload: repository or issue"})
        try:
            parsed = our_report(marker_json(text))
            if parsed.issue is not None and parse_issue(parsed.issue, repo) != (repo, number):
                raise BadReport(400, "the marker names another issue than the comment's")
            report = parsed.report(parsed.run_id or f"comment:{comment_id}", source="comment")
        except (UsageParseError, BadReport) as exc:
            return Outcome(400, {"error": f"usage marker: {exc}"})
        installation = payload.get("installation")
        installation_id = installation.get("id") if isinstance(installation, Mapping) else None
        return self.submit(repo, number, report, delivery,
                           installation_id if type(installation_id) is int else None)

    # -- both ---------------------------------------------------------------

    def submit(
        self, repo: str, number: int, report: UsageReport, once_key: str | None = None,
        installation: int | None = None,
    ) -> Outcome:
        """Record and charge ``report``; ``once_key`` (a delivery id, a token
        id) makes the same request twice count once, on top of the run id."""
        key = issue_key(repo, number)
        now = self.clock()
        with self.issue_locks.hold(key):

            def change(state: State) -> ReportOutcome | None:
                if once_key and once_key in state.deliveries:
                    return None
                outcome = record_report(state, key, report, self.models, now)
                if once_key:
                    state.remember_delivery(once_key, now)
                return outcome

            try:
                result = self.store.apply(now, change)
            except TooManyReports as exc:
                return Outcome(429, {"error": str(exc)})
            if result is None or result.status == "duplicate":
                return Outcome(200, {"status": "duplicate", "issue": key, "run": report.run_id})
        comment = self.update_comment(repo, number, installation)
        log.info(json.dumps({
            "event": "usage", "issue": key, "run": report.run_id, "status": result.status,
            "tokens": report.total, "source": report.source,
        }))
        body: dict[str, Any] = {
            "status": result.status,
            "issue": key,
            "run": report.run_id,
            "tokens": report.total,
            "charged": [
                {"model": c.model, "paid_by": c.payment.label, "tokens": c.payment.tokens,
                 "cost_usd": round(c.payment.cost_usd, 6),
                 "list_cost_usd": round(c.list_cost_usd, 6), "note": c.note}
                for c in result.charges
            ],
            "comment_updated": comment == "updated",
            # "queued": the bot's comment is edited by the queue's workers,
            # at the installation's pace
            "comment_update": comment,
        }
        return Outcome(200 if result.status == "charged" else 202, body)


def marker_json(text: str) -> Any:
    """The JSON inside the first usage marker of a comment."""
    start = text.index(REPORT_MARKER) + len(REPORT_MARKER)
    end = text.find("-->", start)
    if end < 0:
        raise UsageParseError("the marker is not closed with -->")
    inner = text[start:end].strip()
    if len(inner) > MAX_REPORT_CHARS:
        raise UsageParseError("the marker's JSON is too long")
    try:
        return json.loads(inner)
    except json.JSONDecodeError as exc:
        raise UsageParseError(f"not JSON ({exc.msg})") from None
