"""Keep the LP/MILP solver's own prints off standard output.

HiGHS (through scipy) writes some messages, such as
``HighsMipSolverData::transformNewIntegerFeasibleSolution tmpSolver.run();``,
with C's printf straight to file descriptor 1: no Python setting silences
it, and a command that prints JSON would print invalid JSON. So the commands
point descriptor 1 at the null device while they plan, flush C's buffer
before pointing it back (a pipe's buffer would otherwise be written later,
into the JSON), and restore it. This lives here, not in core: core does no
I/O, and only the CLI owns the process's standard output.
"""

from __future__ import annotations

import ctypes
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager, suppress

STDOUT_FD = 1


def _flush_c_stdio() -> None:
    """fflush(NULL): write out every C stdio buffer (printf's included)."""
    with suppress(OSError, AttributeError):
        ctypes.CDLL(None).fflush(None)


@contextmanager
def solver_output_off_stdout() -> Iterator[None]:
    """While inside, whatever is written to descriptor 1 (by C or Python)
    goes to the null device. Not for threads that print meanwhile: the CLI
    plans, then prints."""
    sys.stdout.flush()
    try:
        saved = os.dup(STDOUT_FD)
    except OSError:  # no descriptor 1 at all: nothing to protect
        yield
        return
    try:
        null = os.open(os.devnull, os.O_WRONLY)
        try:
            os.dup2(null, STDOUT_FD)
        finally:
            os.close(null)
        yield
    finally:
        _flush_c_stdio()
        sys.stdout.flush()
        os.dup2(saved, STDOUT_FD)
        os.close(saved)
