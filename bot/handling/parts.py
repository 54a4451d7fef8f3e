"""What every behaviour of the handler works with (the Handler provides it):
the engine's and labels' configuration, the store, GitHub, the clock."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Protocol

from model_assigner.bot.github.gateway import IssueGateway
from model_assigner.bot.github.repo_config import LabelsConfig
from model_assigner.bot.store.protocol import StateStore
from model_assigner.core.config import EngineConfig


class Parts(Protocol):
    @property
    def engine(self) -> EngineConfig: ...

    @property
    def labels(self) -> LabelsConfig: ...

    @property
    def store(self) -> StateStore: ...

    @property
    def gateway_for(self) -> Callable[[int | None], IssueGateway]: ...

    @property
    def clock(self) -> Callable[[], datetime]: ...


def remember_only(parts: Parts, delivery: str | None) -> None:
    """Record a delivery as handled, changing nothing else."""
    if delivery:
        parts.store.apply(
            parts.clock(), lambda state: state.remember_delivery(delivery, parts.clock())
        )
