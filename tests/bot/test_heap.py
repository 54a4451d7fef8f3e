"""bot/heap.py, in a process of its own (freezing the test process's heap
would keep every later test's cycles): after ``settle()`` a full collection
walks none of the objects that existed, and the modules a decision imports
lazily are loaded."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from typing import Any

import pytest

from tests.helpers import REPO_ROOT

SCRIPT = textwrap.dedent("""
    import gc, json, sys
    import model_assigner.bot.web.app  # the server's modules
    before = len(gc.get_objects())
    from model_assigner.bot.heap import settle
    frozen = settle(sys.argv[1])
    print(json.dumps({
        "before": before,
        "frozen": frozen,
        "tracked_after": len(gc.get_objects()),
        "scipy": "scipy.optimize" in sys.modules and "scipy.sparse" in sys.modules,
    }))
""")


def settled(strategy: str) -> dict[str, Any]:
    done = subprocess.run([sys.executable, "-c", SCRIPT, strategy], cwd=REPO_ROOT,
                          capture_output=True, text=True, timeout=120, check=True)
    found: dict[str, Any] = json.loads(done.stdout)
    return found


@pytest.mark.parametrize(("strategy", "scipy"), [("online", True), ("optimal", True),
                                                 ("maximize_subscription_usage", False)])
def test_after_settling_a_full_collection_walks_none_of_the_server_modules(
    strategy: str, scipy: bool,
) -> None:
    """scipy is loaded before the freeze for the strategies that solve with
    it, and not for the greedy ones (~50 MB a process for nothing)."""
    found = settled(strategy)
    assert found["before"] > 20_000  # the modules' objects, walked by every full pass
    assert found["frozen"] > found["before"] * 0.9  # all but the garbage collected first
    assert found["tracked_after"] < 1_000  # what a full collection walks now
    assert found["scipy"] is scipy
