"""Moves the wall clock of every Python process the tests start, when the
test run asked for it (see ``pytest_configure`` in tests/conftest.py).

Python imports ``sitecustomize`` at start-up from sys.path; the test run puts
this folder on PYTHONPATH only when MODEL_ASSIGNER_TEST_CLOCK_OFFSET is set,
so servers started as subprocesses keep the same shifted clock as the test
process that talks to them (signed tokens, dates in the store)."""

from __future__ import annotations

import os
import time
from datetime import UTC, datetime

_offset = os.environ.get("MODEL_ASSIGNER_TEST_CLOCK_OFFSET")
if _offset:
    import time_machine

    time_machine.travel(
        datetime.fromtimestamp(time.time() + float(_offset), UTC), tick=True
    ).start()
