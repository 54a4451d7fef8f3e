"""Does GitHub accept the App's credentials? Asked at start-up and by /healthz.

An App id that is not the private key's App passes every local check (both
are well formed) and then fails every delivery with 503. GitHub is the only
judge: ``GET /app`` with the App's JWT answers 401 when it rejects them. A
server started from the environment asks once before it serves (and stops
with one line when rejected), and /healthz asks again at most once a minute
per worker, so an orchestrator sees the problem instead of a green probe over
a server that cannot do anything. An unanswered request is not a rejection:
a GitHub outage must not make every replica unhealthy.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import requests
from github import Auth, GithubException, GithubIntegration

from model_assigner.bot.github.app_key import jwt_signer
from model_assigner.bot.settings import Settings

RECHECK_SECONDS = 60.0
# /healthz waits for this answer: short, no retries (probes time out in ~5 s).
TIMEOUT_SECONDS = 3


class CredentialsCheck:
    def __init__(
        self, settings: Settings, clock: Callable[[], float] = time.monotonic
    ) -> None:
        assert settings.app_id is not None and settings.private_key is not None
        self.app_id = settings.app_id
        self._integration = GithubIntegration(
            auth=Auth.AppAuth(settings.app_id, sign_func=jwt_signer(settings.private_key)),
            base_url=settings.api_url, timeout=TIMEOUT_SECONDS, retry=None,
            seconds_between_requests=None, seconds_between_writes=None,
        )
        self._clock = clock
        self._checked_at: float | None = None
        self._lock = threading.Lock()
        self.problem: str | None = None

    def check(self) -> str | None:
        """Ask GitHub now. The problem when it rejects the credentials; None
        when it accepts them; the previous answer when it does not answer."""
        try:
            self._integration.get_app()
        except GithubException as exc:
            if exc.status == 401:
                message = exc.data.get("message") if isinstance(exc.data, dict) else None
                self.problem = (
                    f"GITHUB_APP_ID {self.app_id}: GitHub rejects the App's credentials "
                    f"(GET /app: HTTP 401{': ' + str(message) if message else ''}); is the "
                    "private key this App's?"
                )
        except requests.RequestException:
            pass
        else:
            self.problem = None
        self._checked_at = self._clock()
        return self.problem

    def current(self) -> str | None:
        """The answer for /healthz: asked again when the last is a minute old."""
        with self._lock:
            if self._checked_at is None or self._clock() - self._checked_at >= RECHECK_SECONDS:
                self.check()
            return self.problem
