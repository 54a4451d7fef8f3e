"""How the engine matches words, in one place so that every rule matches alike.

The seed tests ``'ui' in workspace_path`` and ``'production' in description``:
raw substrings, so "build" reads as frontend and "reproduction steps" as a
production risk. We match description keywords at the start of a word
("migration" matches "migrations", not "immigration") and path hints against
whole words of the path.

Both the keywords (a repository's config) and the text (an issue body) can be
hostile, so a keyword search must not cost keywords x text: one regular
expression per keyword over a 65,536-character body, for a list of thousands
of keywords, took seconds. A short list is searched keyword by keyword (fast
in C); a longer one against a sorted index of the text's word starts, built
once per text, where each keyword is one binary search.
"""

from __future__ import annotations

import bisect
import re
from functools import lru_cache

# Longest keyword (after runs of spaces become one) that can match: config
# validation refuses longer ones (core.config.Keyword).
MAX_KEYWORD_CHARS = 64
# Up to this many keywords, one regular expression each; beyond, the index.
_SCAN_LIMIT = 8

_PATH_WORD = re.compile(r"[^a-z0-9]+")
_SPACES = re.compile(r"\s+")
_WORD_START = re.compile(r"(?<![a-z0-9])\S")


@lru_cache(maxsize=1024)
def _keyword_pattern(keyword: str) -> re.Pattern[str]:
    words = r"\s+".join(re.escape(part) for part in keyword.lower().split())
    return re.compile(rf"(?<![a-z0-9]){words}")


@lru_cache(maxsize=2)
def _word_start_index(text_lower: str) -> list[str]:
    """The text from each place a keyword may start (not after a letter or
    digit), cut to MAX_KEYWORD_CHARS and sorted; runs of whitespace are one
    space, as a keyword's words are. O(n log n) once per text, whatever the
    number of keywords."""
    text = _SPACES.sub(" ", text_lower)
    width = MAX_KEYWORD_CHARS
    return sorted([text[m.start() : m.start() + width] for m in _WORD_START.finditer(text)])


def _indexed(index: list[str], keyword: str) -> bool:
    wanted = " ".join(keyword.lower().split())
    if not wanted or len(wanted) > MAX_KEYWORD_CHARS:
        return False
    at = bisect.bisect_left(index, wanted)
    return at < len(index) and index[at].startswith(wanted)


def find_keyword(text_lower: str, keywords: list[str]) -> str | None:
    """The first keyword that starts a word of ``text_lower``, if any."""
    if len(keywords) <= _SCAN_LIMIT:
        for keyword in keywords:
            if _keyword_pattern(keyword).search(text_lower):
                return keyword
        return None
    index = _word_start_index(text_lower)
    for keyword in keywords:
        if _indexed(index, keyword):
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
