"""GitHub's pace and failures: the primary and secondary rate limits, and
injected faults (500/502/503, rate limits, hangs)."""

from __future__ import annotations

import time

from werkzeug.wrappers import Response

from bench.github_standin.model import (
    FAULT_KINDS,
    PRIMARY_RATE_LIMIT_MESSAGE,
    SECONDARY_RATE_LIMIT_MESSAGE,
    WRITE_METHODS,
    Fault,
    _json_response,
)
from bench.github_standin.state import StandInState


class Pace(StandInState):
    """Rate limits and injected faults, over the state."""

    def inject_fault(
        self,
        path: str,
        kind: str = "500",
        times: int | None = 1,
        *,
        method: str | None = None,
        retry_after: int | None = 1,
        hang_seconds: float = 5.0,
        then_status: int | None = 502,
    ) -> Fault:
        """The next ``times`` requests (None: all, until ``clear_faults``) whose
        decoded path matches the glob ``path`` (and ``method``, if given) fail
        with ``kind``: "500", "502", "503", "secondary_rate_limit" (403 with a
        ``Retry-After: retry_after`` header unless None) or "hang" (wait
        ``hang_seconds``, then answer ``then_status``, or handle normally when
        None)."""
        if kind not in FAULT_KINDS:
            raise ValueError(f"fault kind must be one of {FAULT_KINDS}, got {kind!r}")
        fault = Fault(path, kind, times, method, retry_after, hang_seconds, then_status)
        with self.lock:
            self.faults.append(fault)
        return fault

    def clear_faults(self) -> None:
        with self.lock:
            self.faults.clear()

    def limit_writes(self, per_minute: int = 80, per_hour: int = 500,
                     retry_after: int | None = 60) -> None:
        """The secondary limit on content-creating requests, per installation."""
        with self.lock:
            self.write_limits = (per_minute, per_hour, retry_after)
            self.write_times.clear()

    def limit_requests(self, remaining: int, reset_in: float) -> None:
        """The primary limit: ``remaining`` requests per installation, then 403
        until ``reset_in`` seconds from now."""
        with self.lock:
            self.primary_limit = (remaining, reset_in)
            self.primary.clear()

    def require_write_interval(self, seconds: float | None) -> None:
        """Refuse (403, a secondary limit with ``Retry-After: 1``) any
        content-creating request that arrives less than ``seconds`` after
        the installation's previous one: a client that paces every write
        never sees it; a write sent outside the pacing is caught."""
        with self.lock:
            self.write_interval = seconds
            self.last_write.clear()
            self.unpaced.clear()

    def _refund(self, installation: int) -> None:
        with self.lock:
            if self.primary_limit is not None and installation in self.primary:
                left, reset_at = self.primary[installation]
                self.primary[installation] = (left + 1, reset_at)

    def _limited(self, method: str, auth: str, installation: int | None,
                 path: str) -> Response | None:
        if auth != "token" or installation is None:
            return None
        now = time.monotonic()
        with self.lock:
            if self.primary_limit is not None:
                left, reset_at = self.primary.get(
                    installation, (self.primary_limit[0], time.time() + self.primary_limit[1])
                )
                if time.time() >= reset_at:
                    left, reset_at = self.primary_limit[0], time.time() + self.primary_limit[1]
                if left <= 0:
                    self.refused += 1
                    return self._primary_answer(installation, reset_at)
                self.primary[installation] = (left - 1, reset_at)
            if self.write_interval is not None and method in WRITE_METHODS:
                last = self.last_write.get(installation)
                if last is not None and now - last < self.write_interval:
                    self.refused += 1
                    self.unpaced.append((method, path))
                    return self._secondary_answer(1)
                self.last_write[installation] = now
            if self.write_limits is None or method not in WRITE_METHODS:
                return None
            per_minute, per_hour, retry_after = self.write_limits
            times = [t for t in self.write_times.get(installation, []) if t > now - 3600]
            self.write_times[installation] = times
            if len(times) >= per_hour or len([t for t in times if t > now - 60]) >= per_minute:
                self.refused += 1
                return self._secondary_answer(retry_after)
            times.append(now)
        return None

    @staticmethod
    def _secondary_answer(retry_after: int | None) -> Response:
        headers = {} if retry_after is None else {"Retry-After": str(retry_after)}
        return _json_response(
            403,
            {
                "message": SECONDARY_RATE_LIMIT_MESSAGE,
                "documentation_url": "https://docs.github.com/rest/overview/"
                "rate-limits-for-the-rest-api#about-secondary-rate-limits",
            },
            headers,
        )

    @staticmethod
    def _primary_answer(installation: int | None, reset_at: float) -> Response:
        return _json_response(
            403,
            {
                "message": PRIMARY_RATE_LIMIT_MESSAGE.format(id=installation),
                "documentation_url": "https://docs.github.com/rest/overview/"
                "rate-limits-for-the-rest-api#about-rate-limits",
            },
            {"x-ratelimit-limit": "5000", "x-ratelimit-remaining": "0",
             "x-ratelimit-used": "5000", "x-ratelimit-resource": "core",
             "x-ratelimit-reset": str(int(reset_at + 0.999))},
        )

    def _fault(self, fault: Fault, installation: int | None = None) -> Response | None:
        if fault.kind == "hang":
            self.stopping.wait(fault.hang_seconds)
            if fault.then_status is None:
                return None
            return _json_response(fault.then_status, {"message": "Server Error"})
        if fault.kind == "secondary_rate_limit":
            return self._secondary_answer(fault.retry_after)
        if fault.kind == "primary_rate_limit":  # resets ``retry_after`` seconds from now
            return self._primary_answer(installation, time.time() + (fault.retry_after or 60))
        if fault.kind == "502":  # GitHub's 502 is an HTML page, not JSON
            return Response(
                "<html><body><h1>502 Bad Gateway</h1></body></html>\n",
                status=502,
                mimetype="text/html",
            )
        return _json_response(int(fault.kind), {"message": "Server Error"})
