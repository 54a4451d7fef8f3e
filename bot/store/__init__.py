"""The quota store: the state model (state.py), the JSON document's codec
(codec.py), atomic files and locks (files.py), the JSON store (json_store.py)
and the PostgreSQL store (postgresql.py, imported on demand: psycopg only
when a database is named). Import from the module that defines a name; the
names below are re-exported for callers that want the store as one thing.
"""

from model_assigner.bot.store.codec import BIG_SECTIONS, parse_state, serialize
from model_assigner.bot.store.files import file_lock, write_atomically
from model_assigner.bot.store.json_store import Store
from model_assigner.bot.store.protocol import StateStore
from model_assigner.bot.store.state import (
    DELIVERY_ID,
    DELIVERY_LIMIT,
    DELIVERY_MEMORY,
    MAX_DEPENDENCIES,
    STATE_VERSION,
    UNKNOWN_CLASS,
    USAGE_HIGH,
    USAGE_KEEP,
    IssueRecord,
    Reservation,
    ReservationStep,
    State,
    StoreError,
    apply_resets,
    initial_state,
    issue_time,
    sync_with_config,
)

__all__ = [
    "BIG_SECTIONS",
    "DELIVERY_ID",
    "DELIVERY_LIMIT",
    "DELIVERY_MEMORY",
    "MAX_DEPENDENCIES",
    "STATE_VERSION",
    "UNKNOWN_CLASS",
    "USAGE_HIGH",
    "USAGE_KEEP",
    "IssueRecord",
    "Reservation",
    "ReservationStep",
    "State",
    "StateStore",
    "Store",
    "StoreError",
    "apply_resets",
    "file_lock",
    "initial_state",
    "issue_time",
    "parse_state",
    "serialize",
    "sync_with_config",
    "write_atomically",
]
