"""What the server and the commands need of a store, whichever it is."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from datetime import datetime
from typing import Protocol, TypeVar

from model_assigner.bot.store.state import State

T = TypeVar("T")


class StateStore(Protocol):
    """What the server and the commands need of a store: the JSON file
    (bot/store/json_store.py, Store) or PostgreSQL (bot/store/postgresql.py,
    PgStore). Same State,
    same transactions, same answers."""

    kind: str

    def read(self) -> State: ...

    def view(self, look: Callable[[State], T]) -> T: ...

    def seen_delivery(self, delivery_id: str) -> bool: ...

    def transaction(self, now: datetime) -> AbstractContextManager[State]: ...

    def apply(self, now: datetime, change: Callable[[State], T]) -> T: ...

    def exists(self) -> bool: ...

    def check(self) -> None: ...

    def ensure_exists(self) -> None: ...

    def check_file(self) -> None: ...

    def ensure_writable(self) -> None: ...

    def remove_stale_temporaries(self, older_than: float = 60.0) -> int: ...

