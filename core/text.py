"""How the engine matches words, in one place so that every rule matches alike.

The seed tests ``'ui' in workspace_path`` and ``'production' in description``:
raw substrings, so "build" reads as frontend and "reproduction steps" as a
production risk. We match description keywords at the start of a word
("migration" matches "migrations", not "immigration") and path hints against
whole words of the path.
"""

from __future__ import annotations

import re
from functools import lru_cache

_PATH_WORD = re.compile(r"[^a-z0-9]+")


@lru_cache(maxsize=1024)
def _keyword_pattern(keyword: str) -> re.Pattern[str]:
    words = r"\s+".join(re.escape(part) for part in keyword.lower().split())
    return re.compile(rf"(?<![a-z0-9]){words}")


def find_keyword(text_lower: str, keywords: list[str]) -> str | None:
    """The first keyword that starts a word of ``text_lower``, if any."""
    for keyword in keywords:
        if _keyword_pattern(keyword).search(text_lower):
            return keyword
    return None


@lru_cache(maxsize=4096)
def path_words(path: str) -> frozenset[str]:
    return frozenset(word for word in _PATH_WORD.split(path.lower()) if word)


def find_path_hint(path: str, hints: list[str]) -> str | None:
    """The first hint that is a whole word of ``path``, if any."""
    words = path_words(path)
    for hint in hints:
        if hint.lower() in words:
            return hint
    return None


def first_label(labels: set[str], wanted: list[str]) -> str | None:
    """The first of ``wanted`` present in ``labels`` (both lowercase)."""
    for label in wanted:
        if label.lower() in labels:
            return label
    return None
