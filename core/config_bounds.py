"""The bounds every configuration is held to: a strict schema (no unknown key,
no inf or nan, frozen) and the most a config (a repository's included) can
make the engine walk for every issue. Shared by the schemas of the three
config files (core/config.py, core/config_subscriptions.py).
"""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from model_assigner.core.text import MAX_KEYWORD_CHARS

# Bounds on everything a config (a repository's included) can make the engine
# walk for every issue: a word list, a table of named entries, one word. The
# defaults use a fraction of each; a 30 KB keyword list is refused, not run.
MAX_WORDS = 64  # entries of one keyword / label / path-hint list
MAX_TABLE = 32  # named entries of one table (domains, risk levels, modifiers)
MAX_RULES = 16  # entries of an ordered rule list (bands, overrides, size factors)
MAX_NAME_CHARS = 64
# Tokens one issue can be estimated at: a billion is beyond any context window.
MAX_ESTIMATE_TOKENS = 10**9

Word = Annotated[str, StringConstraints(min_length=1, max_length=MAX_KEYWORD_CHARS)]
Name = Annotated[str, StringConstraints(min_length=1, max_length=MAX_NAME_CHARS)]
Words = Annotated[list[Word], Field(max_length=MAX_WORDS)]
TokenCount = Annotated[int, Field(ge=0, le=MAX_ESTIMATE_TOKENS)]


class Strict(BaseModel):
    """A config section: an unknown key is an error, never a silent default."""

    # No inf or nan: a weight of 1e400 would clamp every score to 100.
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)
