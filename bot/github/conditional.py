"""Conditional reads: GitHub answers ``304 Not Modified`` to a GET whose
``If-None-Match`` names the ETag it sent last time, and a 304 does not count
against the primary rate limit (docs.github.com, "Use conditional requests
if appropriate").

Each process keeps, per URL, the ETag of the last answer and what the bot
made of it (a commit's SHAs, a file count, a config's text: never the whole
answer, so a tree of 100,000 files costs a number, not megabytes), in a
bounded LRU. A read sends the ETag it has; a 304 returns the kept value.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")

ETAG_CACHE_SIZE = 1024


class ConditionalReads:
    """One process's ETags, shared by its threads."""

    def __init__(self, requester: Any, size: int = ETAG_CACHE_SIZE) -> None:
        self.requester = requester
        self.size = size
        self._known: OrderedDict[str, tuple[str, Any]] = OrderedDict()
        self._lock = threading.Lock()
        self.not_modified = 0  # 304s answered to this process (tests, logs)

    def get(self, url: str, derive: Callable[[Any], T]) -> T:
        """GET ``url`` (its query in it), with the ETag kept for it; what
        ``derive`` makes of a 200's JSON, or the value kept on a 304.
        GithubException and requests' errors go to the caller."""
        with self._lock:
            known = self._known.get(url)
        headers = {"If-None-Match": known[0]} if known is not None else None
        answer_headers, data = self.requester.requestJsonAndCheck("GET", url, headers=headers)
        if data is None and known is not None:  # 304: an empty body
            with self._lock:
                self.not_modified += 1
                if url in self._known:
                    self._known.move_to_end(url)
            return known[1]  # type: ignore[no-any-return]
        value = derive(data)
        etag = next((v for k, v in (answer_headers or {}).items() if k.lower() == "etag"), None)
        if isinstance(etag, str) and etag:
            with self._lock:
                self._known[url] = (etag, value)
                self._known.move_to_end(url)
                while len(self._known) > self.size:
                    self._known.popitem(last=False)
        return value
