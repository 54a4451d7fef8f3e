"""The online strategy's period and history (core/online_history.py)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from model_assigner.core.online_history import period_of
from tests.helpers import NOW, SEED_RESET, build_ledger

# NOW is 2026-02-10 12:00; the ledgers reset on 2026-03-01: the period is
# February, 9.5 of its 28 days gone.
FEB_1 = datetime(2026, 2, 1, tzinfo=UTC)


def test_the_period_runs_to_the_first_reset_ahead() -> None:
    period = period_of(build_ledger(), NOW)
    assert (period.start, period.end) == (FEB_1, SEED_RESET)
    assert period.elapsed == pytest.approx(9.5 / 28)
