"""The end-to-end fixtures: one GitHub stand-in per test module (the tests of
a module share it, so each uses its own issue numbers)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from bench.github_standin import GitHubStandIn, StandInServer
from tests.e2e.support import running_standin


@pytest.fixture(scope="module")
def github() -> Iterator[tuple[GitHubStandIn, StandInServer]]:
    with running_standin() as pair:
        yield pair


@pytest.fixture(scope="module")
def standin(github: tuple[GitHubStandIn, StandInServer]) -> GitHubStandIn:
    return github[0]
