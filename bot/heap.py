"""Settle a long-running process's heap: load what a decision imports lazily,
then tell the garbage collector to leave what exists now alone.

Why: a full (generation 2) collection walks every object the collector
tracks, and ~95,000 of a server's are its modules' (scipy, pydantic,
PyGithub, Flask), which never die. With them in, each full pass held the GIL
for 35-90 ms, every few seconds in each process under load: the p99 of
bystander decisions (bench/bench_hostile.py) and of acknowledgements came
from those pauses. ``gc.freeze()`` moves every object alive now to the
permanent generation, which no collection walks. Done in each worker after
gunicorn's fork, not in the master before it: it touches every object's
header, as the worker's first full collection did anyway, so it costs no
memory the worker was not already copying. Objects created later are
collected as ever; frozen ones are still freed by reference counting, only
a cycle among them would be kept, so the garbage is collected once first.

Called once per process that serves: each gunicorn worker once it has the
app (bot/web/worker.py), and ``model-assigner worker``.
"""

from __future__ import annotations

import gc
import importlib

# Imported on the first decision of the strategies that solve with scipy
# (core/online_prices.py and core/optimal_solve.py import it inside the
# function, to keep the command line quick): imported here, before the heap
# is frozen, when the operator's strategy is one of them (a repository may not
# change the strategy). ~50 MB a process: not for the greedy strategies.
LAZY_MODULES = ("numpy", "scipy.optimize", "scipy.sparse")
SOLVING_STRATEGIES = frozenset({"online", "optimal"})


def settle(strategy: str | None = None) -> int:
    """Import LAZY_MODULES when ``strategy`` (the operator's, None: not
    known) solves with scipy, collect, freeze; the number of objects frozen."""
    for name in LAZY_MODULES if strategy is None or strategy in SOLVING_STRATEGIES else ():
        importlib.import_module(name)
    gc.collect()
    gc.freeze()
    return gc.get_freeze_count()
