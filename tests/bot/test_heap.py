"""bot/heap.py, in a process of its own (freezing the test process's heap
would keep every later test's cycles): after ``settle()`` a full collection
walks none of the objects that existed, and the modules a decision imports
lazily are loaded."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

from tests.helpers import REPO_ROOT

SCRIPT = textwrap.dedent("""
    import gc, json, sys
    import model_assigner.bot.web.app  # the server's modules
    before = len(gc.get_objects())
    from model_assigner.bot.heap import settle
    frozen = settle()
    print(json.dumps({
        "before": before,
        "frozen": frozen,
        "tracked_after": len(gc.get_objects()),
        "scipy": "scipy.optimize" in sys.modules and "scipy.sparse" in sys.modules,
    }))
""")


def test_after_settling_a_full_collection_walks_none_of_the_server_modules() -> None:
    done = subprocess.run([sys.executable, "-c", SCRIPT], cwd=REPO_ROOT, capture_output=True,
                          text=True, timeout=120, check=True)
    found = json.loads(done.stdout)
    assert found["before"] > 20_000  # the modules' objects, walked by every full pass
    assert found["frozen"] >= found["before"]
    assert found["tracked_after"] < 1_000  # what a full collection walks now
    assert found["scipy"]
