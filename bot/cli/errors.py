"""What every command shares about failing: one line on stderr, exit status 2.

Kept apart from the parser (``bot/cli/__init__.py``) so that the command
modules can raise ``CliError`` without importing the module that imports them.
"""

from __future__ import annotations

from datetime import UTC, datetime

EXIT_USAGE = 2


class CliError(Exception):
    """A user-facing failure: printed as one line, exit status 2."""


def parse_now(text: str | None) -> datetime:
    if text is None:
        return datetime.now(UTC)
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise CliError(f"--now: not an ISO 8601 date-time: {text!r}") from None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
