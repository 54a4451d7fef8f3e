"""The ``model-assigner`` command line: the parser and ``main``.

Every failure a user can cause ends in one line on stderr and exit status 2,
never a traceback: the CLI is often run from scripts that only show stderr.
Each command lives in its own module here (``assign``, ``ops``, ``db``,
``usage``, ``queue``, ``server``, ``setup``, ``plan``) and adds its
subcommands through ``add_commands``; they are imported when the
parser is built, so importing this package stays cheap. The shared failure
type is in ``errors.py``, which imports none of them.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from model_assigner.bot.cli.errors import EXIT_USAGE, CliError

__all__ = ["build_parser", "main"]


def package_version() -> str:
    """The installed distribution's version (pyproject.toml's)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("model-assigner")
    except PackageNotFoundError:  # run from a checkout that was never installed
        return "unknown (not installed)"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="model-assigner",
        description="Decide which LLM should work on each issue, within quotas and budget.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {package_version()}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    from model_assigner.bot.cli import assign, db, ops, plan, queue, server, setup, usage
    from model_assigner.core.types import STRATEGIES

    assign.add_commands(sub)
    server.add_commands(sub)
    ops.add_commands(sub)
    db.add_commands(sub)
    usage.add_commands(sub)
    queue.add_commands(sub)
    setup.add_commands(sub)
    plan.add_commands(sub, STRATEGIES)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    handler: Callable[[argparse.Namespace], int] = args.handler
    try:
        return handler(args)
    except CliError as exc:
        print(f"model-assigner: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # `model-assigner ... | head`: the reader left; that is not an error.
        sys.stderr.close()
        return 0
